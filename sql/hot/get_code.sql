-- A code's stored offer, as redemption checks it (the code carries nothing itself).
SELECT o.offer_id, o.discount_pct, o.currency, o.expires_at, o.redeemed_at, v.voided_at,
       v.superseded_by, o.user_id, o.redeemed_order_id
FROM offers AS o
LEFT JOIN offer_voids AS v ON v.offer_id = o.offer_id
WHERE o.code = :code;
