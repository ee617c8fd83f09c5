-- Rows the cold store now holds leave the hot store (:keys: a JSON array of event_id).
DELETE FROM turns WHERE event_id IN (SELECT value FROM json_each(:keys));
