SELECT user_id, cart_value, currency, segment, cap_pct, discount_pct, engine, reasoning, message
FROM offers
ORDER BY discount_pct / cap_pct DESC, created_at
LIMIT %(limit)s;
