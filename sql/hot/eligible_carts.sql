-- The experiment's eligible carts without an attributed order, with the offer each treated one
-- got (the simulated world decides which of them order: producers/synthetic.World).
SELECT l.event_id, l.user_id, l.session_id, l.grp, l.segment, l.cap_pct, l.cart_value,
       l.currency, l.decided_at, o.code, coalesce(o.discount_pct, 0) AS offered_pct
FROM lift_carts l
LEFT JOIN offers o ON o.offer_id = l.offer_id
WHERE l.experiment = :experiment AND l.order_event_id IS NULL
ORDER BY l.decided_at;
