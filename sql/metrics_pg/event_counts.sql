-- Events by type, outcome and reason (sgr_events_total): one row per recorded outcome.
SELECT coalesce(type, '') AS type, outcome, coalesce(reason, '') AS reason, count(*) AS n
FROM processed_events
GROUP BY 1, 2, 3;
