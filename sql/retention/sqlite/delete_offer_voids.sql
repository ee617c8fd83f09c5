-- Rows the cold store now holds leave the hot store (:keys: a JSON array of offer_id).
DELETE FROM offer_voids WHERE offer_id IN (SELECT value FROM json_each(:keys));
