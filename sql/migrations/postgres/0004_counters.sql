-- Version 4: counters kept as outcomes and offers are recorded, so that the metrics exporter
-- never counts over processed_events or offers (a scrape's cost is independent of the tables'
-- size, and rows may leave the hot store with retention without the counters going down).
-- A statement-level trigger per table (its transition table: one upsert per statement, however
-- many rows it inserted): every way a row is inserted counts, in the same transaction. Counters
-- only go up (Prometheus counters). `shard` is the writer's backend pid modulo 16: concurrent
-- writers mostly update rows of their own instead of queueing on one row until they commit.
CREATE TABLE IF NOT EXISTS event_counters (
    type     TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    shard    SMALLINT NOT NULL DEFAULT 0,
    n        BIGINT NOT NULL,
    PRIMARY KEY (type, outcome, reason, shard)
);

CREATE TABLE IF NOT EXISTS offer_counters (
    engine   TEXT NOT NULL,
    shard    SMALLINT NOT NULL DEFAULT 0,
    n        BIGINT NOT NULL,
    PRIMARY KEY (engine, shard)
);

INSERT INTO event_counters (type, outcome, reason, shard, n)
SELECT coalesce(type, ''), outcome, coalesce(reason, ''), 0, count(*)
FROM processed_events GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING;

INSERT INTO offer_counters (engine, shard, n)
SELECT engine, 0, count(*) FROM offers GROUP BY 1
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION sgr_count_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_counters AS c (type, outcome, reason, shard, n)
    SELECT coalesce(type, ''), outcome, coalesce(reason, ''), pg_backend_pid() % 16, count(*)
    FROM new_rows GROUP BY 1, 2, 3
    ON CONFLICT (type, outcome, reason, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION sgr_count_offers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO offer_counters AS c (engine, shard, n)
    SELECT engine, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY 1
    ON CONFLICT (engine, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS count_events ON processed_events;
CREATE TRIGGER count_events AFTER INSERT ON processed_events
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sgr_count_events();

DROP TRIGGER IF EXISTS count_offers ON offers;
CREATE TRIGGER count_offers AFTER INSERT ON offers
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sgr_count_offers();

-- The exporter's fold of recent outcomes and retention read by finish time.
CREATE INDEX IF NOT EXISTS events_by_finished ON processed_events (finished_at);
