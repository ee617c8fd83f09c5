-- Version 8: the holdout experiment (worker/domain/experiment.py, docs/lift.md). One row per
-- eligible abandonment of an experiment, in either group, with the cap it had (or would have
-- had), and the order attributed to it within the attribution window; one row per experiment
-- (a new salt is a new experiment).
CREATE TABLE IF NOT EXISTS experiments (
    experiment    TEXT PRIMARY KEY,
    holdout_share DOUBLE PRECISION NOT NULL CHECK (holdout_share > 0 AND holdout_share <= 0.5),
    started_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS lift_carts (
    event_id       TEXT PRIMARY KEY,
    experiment     TEXT NOT NULL,
    grp            TEXT NOT NULL CHECK (grp IN ('treatment', 'holdout')),
    user_id        TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    segment        TEXT NOT NULL,
    cap_pct        DOUBLE PRECISION NOT NULL,
    cart_value     DOUBLE PRECISION NOT NULL,
    margin         DOUBLE PRECISION NOT NULL,
    currency       TEXT NOT NULL,
    offer_id       TEXT,
    decided_at     TIMESTAMPTZ NOT NULL,
    order_event_id TEXT UNIQUE,
    order_value    DOUBLE PRECISION,
    ordered_at     TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS lift_carts_by_user ON lift_carts (user_id, decided_at);
CREATE INDEX IF NOT EXISTS lift_carts_by_experiment ON lift_carts (experiment, decided_at);
