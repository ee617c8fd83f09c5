-- Rows the cold store now holds leave the hot store (:keys: an array of event_id).
DELETE FROM turns WHERE event_id = ANY(:keys::text[]);
