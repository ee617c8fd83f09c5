-- Outcomes finished at or after :since (as the backend keeps times), with their stopwatch, problems and the
-- offer's publication time: the exporter folds each into its histograms once (worker/metrics.py).
SELECT p.event_id, p.outcome, p.finished_at, p.timings, p.error, o.published_at
FROM processed_events AS p
LEFT JOIN offers AS o ON o.offer_id = p.offer_id
WHERE p.finished_at >= :since;
