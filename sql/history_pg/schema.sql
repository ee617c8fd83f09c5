-- Customer history in PostgreSQL (the alternative to a snapshot file per host, measured by
-- `python -m testbench.pgcost`): the same columns as sql/history/schema.sql.
CREATE TABLE IF NOT EXISTS customer_history (
    user_id                 TEXT PRIMARY KEY,
    lifetime_value          DOUBLE PRECISION NOT NULL,
    churn_probability       DOUBLE PRECISION NOT NULL,
    avg_days_between_orders DOUBLE PRECISION,
    orders_count            INTEGER NOT NULL,
    last_order_at           TIMESTAMPTZ
);
