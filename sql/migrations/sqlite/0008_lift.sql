-- Version 8: the holdout experiment (worker/domain/experiment.py, docs/lift.md). One row per
-- eligible abandonment of an experiment, in either group, with the cap it had (or would have
-- had), and the order attributed to it within the attribution window; one row per experiment
-- (a new salt is a new experiment).
CREATE TABLE IF NOT EXISTS experiments (
    experiment    TEXT PRIMARY KEY,
    holdout_share REAL NOT NULL CHECK (holdout_share > 0 AND holdout_share <= 0.5),
    started_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS lift_carts (
    event_id       TEXT PRIMARY KEY,
    experiment     TEXT NOT NULL,
    grp            TEXT NOT NULL CHECK (grp IN ('treatment', 'holdout')),
    user_id        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    segment        TEXT NOT NULL,
    cap_pct        REAL NOT NULL,
    cart_value     REAL NOT NULL,
    margin         REAL NOT NULL,
    currency       TEXT NOT NULL,
    offer_id       TEXT,
    decided_at     TEXT NOT NULL,
    order_event_id TEXT UNIQUE,
    order_value    REAL,
    ordered_at     TEXT
);

CREATE INDEX IF NOT EXISTS lift_carts_by_user ON lift_carts (user_id, decided_at);
CREATE INDEX IF NOT EXISTS lift_carts_by_experiment ON lift_carts (experiment, decided_at);
