-- A customer's live offers: not redeemed, not replaced by a counter-offer, not expired (newest
-- first; one at most while the rules hold, several only after a change of rules).
SELECT o.*
FROM offers AS o
WHERE o.user_id = :user_id AND o.redeemed_at IS NULL AND o.expires_at > :now
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = o.offer_id)
ORDER BY o.created_at DESC
LIMIT 20;
