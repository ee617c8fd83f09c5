-- Outcomes by kind and reason; decisions still waiting count as 'scheduled'.
SELECT outcome, reason, n FROM (
    SELECT outcome, coalesce(reason, '') AS reason, count(*) AS n
    FROM processed_events
    GROUP BY outcome, reason
    UNION ALL
    SELECT 'scheduled' AS outcome, coalesce(d.deferred, '') AS reason, count(*) AS n
    FROM scheduled_decisions AS d
    WHERE d.decided_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id)
    GROUP BY d.deferred
) AS counts
ORDER BY outcome, n DESC;
