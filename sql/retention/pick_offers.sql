-- Offers that may leave the hot store (worker/retention.py): made before :cutoff (older than the
-- retention, the offer window, the event age limit and the code's validity), their code no
-- longer usable (redeemed, expired or void: a live unredeemed offer never leaves), and published
-- (or expired, so the outbox will never need it).
SELECT o.* FROM offers AS o
WHERE o.created_at < :cutoff
  AND (o.redeemed_at IS NOT NULL OR o.expires_at < :now
       OR EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = o.offer_id))
  AND (o.published_at IS NOT NULL OR o.expires_at < :now)
  -- a void whose notice (cart recovery) the outbox has yet to publish keeps its offer here
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS w WHERE w.offer_id = o.offer_id
                  AND w.published_at IS NULL AND w.reason IS NOT NULL)
ORDER BY o.created_at
LIMIT :limit;
