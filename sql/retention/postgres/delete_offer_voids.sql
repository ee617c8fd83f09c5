-- Rows the cold store now holds leave the hot store (:keys: an array of offer_id).
DELETE FROM offer_voids WHERE offer_id = ANY(:keys::text[]);
