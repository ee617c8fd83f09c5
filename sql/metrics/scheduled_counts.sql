-- Decisions waiting (docs/recovery.md): all, and those due more than a minute before :now (the
-- due set is not being drained: no SafeWorker polls it, no reaper runs).
SELECT count(*) AS waiting,
       coalesce(sum(CASE WHEN due_at < :overdue_before THEN 1 ELSE 0 END), 0) AS overdue
FROM scheduled_decisions AS d
WHERE d.decided_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id);
