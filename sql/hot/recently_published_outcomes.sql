-- Outcomes published since a moment: the reaper checks their entries are still in Redis (a crash
-- of Redis with AOF everysec can lose the last second of stream entries), as for offers.
SELECT event_id, session_id, user_id, type, outcome, reason, offer_id, error, error_kind,
       finished_at
FROM processed_events WHERE published_at >= :since ORDER BY published_at;
