-- The outcomes of these events (:event_ids: a JSON array) still waiting for the outcome stream.
SELECT event_id, session_id, user_id, type, outcome, reason, offer_id, error, error_kind,
       finished_at
FROM processed_events
WHERE event_id IN (SELECT value FROM json_each(:event_ids)) AND published_at IS NULL;
