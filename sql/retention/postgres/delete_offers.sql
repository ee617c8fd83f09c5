-- Rows the cold store now holds leave the hot store (:keys: an array of offer_id).
DELETE FROM offers WHERE offer_id = ANY(:keys::text[]);
