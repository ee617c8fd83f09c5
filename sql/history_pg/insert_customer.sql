INSERT INTO customer_history VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (user_id) DO UPDATE SET
    lifetime_value = excluded.lifetime_value,
    churn_probability = excluded.churn_probability,
    avg_days_between_orders = excluded.avg_days_between_orders,
    orders_count = excluded.orders_count,
    last_order_at = excluded.last_order_at;
