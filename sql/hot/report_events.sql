-- One row per processed event of a run, for `sgr report` and `sgr bench`: the window is on the
-- enqueue time (the finish time for an event that never went through RQ). Times are ISO text.
SELECT p.event_id, p.type, p.outcome, p.reason, p.error, p.occurred_at, p.enqueued_at,
       p.started_at, p.finished_at, p.timings, o.engine, o.created_at AS offer_created_at,
       o.published_at
FROM processed_events AS p
LEFT JOIN offers AS o ON o.offer_id = p.offer_id
WHERE coalesce(p.enqueued_at, p.finished_at) >= :since
  AND coalesce(p.enqueued_at, p.finished_at) < :until
ORDER BY p.finished_at, p.event_id;
