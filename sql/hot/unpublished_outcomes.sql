-- Outcomes recorded but not yet on the outcome stream (a worker died between commit and
-- publication, or Redis was down): the outbox publishes them, oldest first.
SELECT event_id, session_id, user_id, type, outcome, reason, offer_id, error, error_kind,
       finished_at
FROM processed_events WHERE published_at IS NULL ORDER BY finished_at LIMIT :limit;
