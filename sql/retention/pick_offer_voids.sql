-- Voids whose offer has left the hot store (they follow it to the cold store).
SELECT v.* FROM offer_voids AS v
WHERE v.voided_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM offers AS o WHERE o.offer_id = v.offer_id)
  AND (v.published_at IS NOT NULL OR v.reason IS NULL)
LIMIT :limit;
