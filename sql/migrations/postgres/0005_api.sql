-- Version 5 (the HTTP API, worker/api/; its number reserved, the runner allows gaps): the
-- answers given under an Idempotency-Key (one row per
-- API key and idempotency key: the same key with the same request gives the same answer, with
-- another request 409), and the order a code was redeemed for (audit; one discount per order).
CREATE TABLE IF NOT EXISTS api_idempotency (
    key_id        TEXT NOT NULL,     -- the API key's id: keys of different callers never meet
    idem_key      TEXT NOT NULL,     -- the Idempotency-Key header as sent
    request_hash  TEXT NOT NULL,     -- sha256 of the route, the code and the body
    status        INTEGER NOT NULL,  -- the HTTP status of the answer
    body          TEXT NOT NULL,     -- the answer's JSON
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX IF NOT EXISTS api_idempotency_by_age ON api_idempotency (created_at);

ALTER TABLE offers ADD COLUMN IF NOT EXISTS redeemed_order_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS offers_by_redeemed_order ON offers (redeemed_order_id)
    WHERE redeemed_order_id IS NOT NULL;
