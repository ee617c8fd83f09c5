-- The outbox marks outcomes published in one statement (an array of ids).
UPDATE processed_events SET published_at = :now
WHERE event_id = ANY(:event_ids::text[]) AND published_at IS NULL;
