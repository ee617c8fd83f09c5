SELECT outcome, coalesce(reason, '') AS reason, count(*) AS n
FROM processed_events
GROUP BY outcome, reason
ORDER BY outcome, n DESC;
