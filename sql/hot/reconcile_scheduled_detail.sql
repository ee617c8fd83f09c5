-- The chaos run's delayed decisions one by one (printed when a check fails).
SELECT d.event_id, d.due_at, d.claims, d.claimed_by, d.decided_at, p.outcome, p.reason,
       p.finished_at, p.attempts, p.error
FROM scheduled_decisions AS d
LEFT JOIN processed_events AS p ON p.event_id = d.event_id
ORDER BY d.due_at;
