-- The bench's (testbench/benchexporter.py): :n recorded outcomes at once, through the same
-- insert trigger that counts them (migration 0004); a recursive CTE makes the rows.
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n)
INSERT INTO processed_events (event_id, session_id, user_id, type, outcome, reason, attempts,
                              occurred_at, finished_at, timings)
SELECT :prefix || i, 's' || i, 'u' || (i % 5000), 'cart_abandoned',
       CASE WHEN i % 10000 = 0 THEN 'dead_letter' ELSE 'no_offer' END,
       CASE i % 4 WHEN 0 THEN 'low_value' WHEN 1 THEN 'window' WHEN 2 THEN 'cap_too_small'
            ELSE 'ordered' END,
       1, :finished_at, :finished_at, '{"state": 0.4, "history": 0.2, "checks": 0.1}'
FROM seq;
