-- The customer's newest offer that no counter-offer replaced (any session, any state): the one
-- record of what the customer was offered, shared by abandonment offers and negotiation.
SELECT o.offer_id, o.session_id, o.code, o.discount_pct, o.cap_pct, o.expires_at, o.redeemed_at,
       o.created_at
FROM offers AS o
WHERE o.user_id = %(user_id)s
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = o.offer_id)
ORDER BY o.created_at DESC
LIMIT 1;
