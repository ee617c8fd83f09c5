-- Recorded outcomes that may leave the hot store: finished and dated before :cutoff (a replay of
-- such an event is refused by the contract as too old, so replay detection no longer needs the
-- row), not a dead letter (`sgr dead-letters requeue` works on those), and neither its offer nor
-- its turn is still in the hot store.
SELECT p.* FROM processed_events AS p
WHERE p.finished_at < :cutoff
  AND coalesce(p.occurred_at, p.finished_at) < :cutoff
  AND p.outcome <> 'dead_letter'
  AND (p.offer_id IS NULL OR NOT EXISTS (SELECT 1 FROM offers AS o WHERE o.offer_id = p.offer_id))
  AND NOT EXISTS (SELECT 1 FROM turns AS t WHERE t.event_id = p.event_id)
ORDER BY p.finished_at
LIMIT :limit;
