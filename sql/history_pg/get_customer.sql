SELECT user_id, lifetime_value, churn_probability, avg_days_between_orders, orders_count,
       last_order_at
FROM customer_history
WHERE user_id = %(user_id)s;
