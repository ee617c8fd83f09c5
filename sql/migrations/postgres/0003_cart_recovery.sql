-- Version 3: cart recovery on the shop's clock (docs/recovery.md).
--
-- scheduled_decisions: a cart_abandoned whose decision waits (SGR_OFFER_DELAY_MINUTES, quiet
-- hours). The hot store is the source of truth: the Redis due set (worker/keys.py: due_decisions)
-- is rebuilt from the rows not yet decided. A worker claims a row (claimed_by, claimed_at: a
-- lease) in a transaction before it decides; the decision's write sets decided_at in the same
-- transaction as the event's one outcome (processed_events).
CREATE TABLE IF NOT EXISTS scheduled_decisions (
    event_id      TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    payload       TEXT NOT NULL,  -- the event as accepted (JSON), decided from at due time
    occurred_at   TIMESTAMPTZ NOT NULL,
    due_at        TIMESTAMPTZ NOT NULL,
    deferred      TEXT,           -- why due_at is later than occurred_at + delay ('quiet_hours')
    scheduled_at  TIMESTAMPTZ NOT NULL,
    claimed_by    TEXT,
    claimed_at    TIMESTAMPTZ,
    claims        INTEGER NOT NULL DEFAULT 0,
    decided_at    TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS scheduled_undecided ON scheduled_decisions (due_at)
    WHERE decided_at IS NULL;

-- orders: every order_completed, with its optional order block (attribution, docs/recovery.md).
CREATE TABLE IF NOT EXISTS orders (
    event_id     TEXT PRIMARY KEY,  -- the order_completed event
    order_id     TEXT,
    session_id   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    value        DOUBLE PRECISION CHECK (value IS NULL OR value >= 0),
    currency     TEXT,
    code         TEXT,              -- the discount code the order used, if any
    occurred_at  TIMESTAMPTZ NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, occurred_at);

-- An order closes the customer's live offer: the void says why, and its notice on the offers
-- stream is published once (published_at, as for offers). A counter-offer's void has no reason
-- and no notice (the counter-offer itself is the news).
ALTER TABLE offer_voids ADD COLUMN IF NOT EXISTS reason TEXT;
ALTER TABLE offer_voids ADD COLUMN IF NOT EXISTS published_at TIMESTAMPTZ;

CREATE INDEX IF NOT EXISTS offer_voids_unpublished ON offer_voids (voided_at)
    WHERE published_at IS NULL AND reason IS NOT NULL;
