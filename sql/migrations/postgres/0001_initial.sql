-- Version 1 (hot store, PostgreSQL, for a fleet): the schema of the release before versioned
-- migrations, kept with IF NOT EXISTS so that a database that release made is adopted as it is
-- (stores/migrations.py). The same tables as SQLite, with times as timestamptz and numbers as
-- double precision (REAL would be 4 bytes here and round the money).
CREATE TABLE IF NOT EXISTS sessions (
    session_id    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'checkout', 'abandoned', 'ordered')),
    cart_value    DOUBLE PRECISION,
    margin        DOUBLE PRECISION,
    currency      TEXT,
    inventory     TEXT,
    last_event_id TEXT NOT NULL,
    last_event_at TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS processed_events (
    event_id     TEXT PRIMARY KEY,  -- idempotency: one outcome per event, whichever host is first
    session_id   TEXT,
    user_id      TEXT,
    type         TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('offer', 'no_offer', 'dead_letter')),
    reason       TEXT,
    offer_id     TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 1,
    occurred_at  TIMESTAMPTZ,
    enqueued_at  TIMESTAMPTZ,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ NOT NULL,
    timings      TEXT
);

CREATE TABLE IF NOT EXISTS offers (
    offer_id      TEXT PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    session_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    currency      TEXT NOT NULL,
    cart_value    DOUBLE PRECISION NOT NULL,
    margin        DOUBLE PRECISION NOT NULL,
    segment       TEXT NOT NULL,
    cap_pct       DOUBLE PRECISION NOT NULL,
    discount_pct  DOUBLE PRECISION NOT NULL CHECK (discount_pct > 0 AND discount_pct <= cap_pct),
    -- random and stored (worker/domain/codes.py): SGR- and three groups of four characters
    code          TEXT NOT NULL UNIQUE CHECK (length(code) = 18 AND substr(code, 1, 4) = 'SGR-'),
    expires_at    TIMESTAMPTZ NOT NULL,
    engine        TEXT NOT NULL,
    model         TEXT,
    reasoning     TEXT NOT NULL,
    message       TEXT NOT NULL,
    guardrail     TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    redeemed_at   TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS offers_by_user ON offers (user_id, created_at);
CREATE INDEX IF NOT EXISTS offers_unpublished ON offers (created_at) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS offers_published ON offers (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_outcome ON processed_events (outcome, reason);


-- Negotiation (worker/negotiation.py): a session's conversation, one row per customer message,
-- with the route taken, the reply sent, its reasoning, and the offer made in it (if any).
CREATE TABLE IF NOT EXISTS turns (
    session_id    TEXT NOT NULL,
    turn          INTEGER NOT NULL CHECK (turn >= 1),
    event_id      TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL,
    message       TEXT NOT NULL,
    route         TEXT NOT NULL CHECK (route IN ('price', 'respond', 'escalate', 'accept')),
    reason        TEXT,
    reply         TEXT NOT NULL,
    reasoning     TEXT NOT NULL,
    offer_id      TEXT,
    discount_pct  DOUBLE PRECISION,
    cap_pct       DOUBLE PRECISION,
    code          TEXT,
    engine        TEXT NOT NULL,
    model         TEXT,
    problems      TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    PRIMARY KEY (session_id, turn),
    CHECK (discount_pct IS NULL OR (discount_pct > 0 AND discount_pct <= cap_pct))
);

-- Offers a counter-offer replaced (one customer, one code at a time): their codes are void.
CREATE TABLE IF NOT EXISTS offer_voids (
    offer_id      TEXT PRIMARY KEY,
    superseded_by TEXT NOT NULL,
    voided_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS turns_unpublished ON turns (created_at) WHERE published_at IS NULL;
