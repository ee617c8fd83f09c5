-- Attribution per offer (docs/recovery.md; issue 23 builds on it): 'redeemed' when its code was
-- used (redeemed, or named by an order that redeemed it), 'converted' when the customer ordered
-- within :window_hours of the offer without the code (or with it refused: orders.code_refused),
-- else 'not_converted' (final once window_closed).
-- The order counted is the first one after the offer; its value as the order block said (or
-- NULL). Offers created since :since.
WITH attributed AS (
    SELECT f.offer_id, f.user_id, f.session_id, f.code, f.discount_pct, f.cart_value,
           f.currency, f.created_at, f.redeemed_at,
           julianday(f.created_at) + :window_hours / 24.0 AS until_day,
           (SELECT r.event_id FROM orders AS r
             WHERE r.user_id = f.user_id AND r.code = f.code AND r.code_refused IS NULL
             ORDER BY r.occurred_at LIMIT 1) AS code_order,
           (SELECT r.event_id FROM orders AS r
             WHERE r.user_id = f.user_id AND r.occurred_at >= f.created_at
               AND julianday(r.occurred_at) <= julianday(f.created_at) + :window_hours / 24.0
               AND (r.code IS NULL OR r.code <> f.code OR r.code_refused IS NOT NULL)
             ORDER BY r.occurred_at LIMIT 1) AS other_order
    FROM offers AS f
    WHERE f.created_at >= :since
)
SELECT a.offer_id, a.user_id, a.session_id, a.code, a.discount_pct, a.cart_value, a.currency,
       a.created_at,
       CASE WHEN a.redeemed_at IS NOT NULL OR a.code_order IS NOT NULL THEN 'redeemed'
            WHEN a.other_order IS NOT NULL THEN 'converted'
            ELSE 'not_converted' END AS attribution,
       r.event_id AS order_event_id, r.order_id, r.value AS order_value,
       r.currency AS order_currency,
       CASE WHEN julianday(:now) > a.until_day THEN 1 ELSE 0 END AS window_closed
FROM attributed AS a
LEFT JOIN orders AS r ON r.event_id = coalesce(a.code_order, a.other_order)
ORDER BY a.created_at;
