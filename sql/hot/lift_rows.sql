-- The experiment's eligible carts since a time, with the discount an order used (the offer's,
-- when its code was redeemed).
SELECT l.grp, l.segment, l.cart_value, l.margin, l.order_value, l.ordered_at,
       CASE WHEN o.redeemed_at IS NOT NULL THEN o.discount_pct ELSE 0 END AS discount_used
FROM lift_carts l
LEFT JOIN offers o ON o.offer_id = l.offer_id
WHERE l.experiment = :experiment AND l.decided_at >= :since
ORDER BY l.decided_at;
