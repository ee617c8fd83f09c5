-- The outbox marks outcomes published in one statement (:event_ids: a JSON array).
UPDATE processed_events SET published_at = :now
WHERE event_id IN (SELECT value FROM json_each(:event_ids)) AND published_at IS NULL;
