-- Decisions to put (back) in the Redis due set: not decided, due before :until, and not held by
-- a live claim (a claim older than :claimed_before has expired: its worker died or gave up).
SELECT d.event_id, d.due_at
FROM scheduled_decisions AS d
WHERE d.decided_at IS NULL AND d.due_at <= :until
  AND (d.claimed_at IS NULL OR d.claimed_at < :claimed_before)
  AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id)
ORDER BY d.due_at
LIMIT :limit;
