-- Events by type, outcome and reason (sgr_events_total): the counters the hot store keeps as
-- outcomes are recorded (migration 0004), summed over their shards; never a scan of the events.
SELECT type, outcome, reason, sum(n) AS n
FROM event_counters
GROUP BY 1, 2, 3;
