-- The outcomes of these events (an array of ids) still waiting for the outcome stream.
SELECT event_id, session_id, user_id, type, outcome, reason, offer_id, error, error_kind,
       finished_at
FROM processed_events WHERE event_id = ANY(:event_ids::text[]) AND published_at IS NULL;
