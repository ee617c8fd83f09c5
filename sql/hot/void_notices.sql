-- Void notices an order caused that are not on the stream yet (the outbox publishes them once).
SELECT v.offer_id, o.code, o.user_id, o.session_id, v.reason, v.superseded_by AS order_event_id,
       v.voided_at
FROM offer_voids AS v
JOIN offers AS o ON o.offer_id = v.offer_id
WHERE v.reason IS NOT NULL AND v.published_at IS NULL
  AND (CAST(:offer_id AS TEXT) IS NULL OR v.offer_id = :offer_id)
ORDER BY v.voided_at
LIMIT :limit;
