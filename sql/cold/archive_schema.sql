-- Cold store (DuckDB): rows retention moved out of the hot store (worker/retention.py), kept
-- for reports and audits. Times as ISO 8601 text (as both hot stores give them back), keyed so
-- that moving the same row twice (a run cut between the copy and the delete) keeps one.
CREATE TABLE IF NOT EXISTS archived_processed_events (
    event_id VARCHAR PRIMARY KEY, session_id VARCHAR, user_id VARCHAR, type VARCHAR,
    outcome VARCHAR, reason VARCHAR, offer_id VARCHAR, error VARCHAR, attempts INTEGER,
    occurred_at VARCHAR, enqueued_at VARCHAR, started_at VARCHAR, finished_at VARCHAR,
    timings VARCHAR, published_at VARCHAR, error_kind VARCHAR, archived_at VARCHAR
);
CREATE TABLE IF NOT EXISTS archived_offers (
    offer_id VARCHAR PRIMARY KEY, event_id VARCHAR, session_id VARCHAR, user_id VARCHAR,
    currency VARCHAR, cart_value DOUBLE, margin DOUBLE, segment VARCHAR, cap_pct DOUBLE,
    discount_pct DOUBLE, code VARCHAR, expires_at VARCHAR, engine VARCHAR, model VARCHAR,
    reasoning VARCHAR, message VARCHAR, guardrail VARCHAR, created_at VARCHAR,
    published_at VARCHAR, redeemed_at VARCHAR, redeemed_order_id VARCHAR, archived_at VARCHAR
);
-- keyed by event id, not (session, turn): a session resumed after its turns left starts at 1
CREATE TABLE IF NOT EXISTS archived_turns (
    event_id VARCHAR PRIMARY KEY, session_id VARCHAR, turn INTEGER, user_id VARCHAR,
    message VARCHAR, route VARCHAR, reason VARCHAR, reply VARCHAR, reasoning VARCHAR,
    offer_id VARCHAR, discount_pct DOUBLE, cap_pct DOUBLE, code VARCHAR, engine VARCHAR,
    model VARCHAR, problems VARCHAR, created_at VARCHAR, published_at VARCHAR, archived_at VARCHAR
);
CREATE TABLE IF NOT EXISTS archived_offer_voids (
    offer_id VARCHAR PRIMARY KEY, superseded_by VARCHAR, voided_at VARCHAR, reason VARCHAR,
    published_at VARCHAR, archived_at VARCHAR
);
