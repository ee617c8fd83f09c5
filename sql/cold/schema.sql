-- Cold store (DuckDB): customer history, written by `sgr setup-data`, read-only for workers.
CREATE OR REPLACE TABLE customers (
    user_id                 VARCHAR PRIMARY KEY,
    lifetime_value          DOUBLE NOT NULL,
    churn_probability       DOUBLE NOT NULL CHECK (churn_probability BETWEEN 0 AND 1),
    avg_days_between_orders DOUBLE,
    orders_count            INTEGER NOT NULL,
    last_order_at           TIMESTAMPTZ
);
