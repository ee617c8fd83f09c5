-- The latest finished events of a run, for live latency percentiles in `sgr loadgen`.
SELECT p.enqueued_at, p.finished_at, o.published_at
FROM processed_events AS p
LEFT JOIN offers AS o ON o.offer_id = p.offer_id
WHERE p.finished_at >= :since AND p.enqueued_at IS NOT NULL
ORDER BY p.finished_at DESC
LIMIT :limit;
