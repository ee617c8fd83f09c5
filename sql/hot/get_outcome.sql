-- An event's one outcome; an abandonment whose decision waits reads 'scheduled' with its due
-- time (and its reason 'quiet_hours' when it was deferred); a decision that waited says when it
-- was taken (decided_at).
SELECT p.event_id, p.outcome, p.reason, p.offer_id, p.error, p.attempts, d.due_at,
       CASE WHEN d.event_id IS NOT NULL THEN p.finished_at END AS decided_at
FROM processed_events AS p
LEFT JOIN scheduled_decisions AS d ON d.event_id = p.event_id
WHERE p.event_id = :event_id
UNION ALL
SELECT d.event_id, 'scheduled', d.deferred, NULL, NULL, d.claims, d.due_at, NULL
FROM scheduled_decisions AS d
WHERE d.event_id = :event_id
  AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id);
