-- How many events have their outcome (progress of a run).
SELECT count(*) AS n FROM processed_events;
