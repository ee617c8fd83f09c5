-- History snapshot (SQLite): the per-customer features of the cold store, copied by
-- `sgr history sync` for point lookups by workers. Written to a new file, then renamed into place.
CREATE TABLE customers (
    user_id                 TEXT PRIMARY KEY,
    lifetime_value          REAL NOT NULL,
    churn_probability       REAL NOT NULL,
    avg_days_between_orders REAL,
    orders_count            INTEGER NOT NULL,
    last_order_at           TEXT
) WITHOUT ROWID;

CREATE TABLE snapshot (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
