-- Outcomes finished at or after :since (as the backend keeps times), oldest first and at most
-- :limit, with their stopwatch, problems and the offer's publication time: the exporter folds
-- each into its histograms once (worker/metrics.py). The events_by_finished index bounds it.
SELECT p.event_id, p.outcome, p.finished_at, p.timings, p.error, o.published_at
FROM processed_events AS p
LEFT JOIN offers AS o ON o.offer_id = p.offer_id
WHERE p.finished_at >= :since
ORDER BY p.finished_at
LIMIT :limit;
