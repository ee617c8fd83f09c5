-- Version 4: counters kept as outcomes and offers are recorded, so that the metrics exporter
-- never counts over processed_events or offers (a scrape's cost is independent of the tables'
-- size, and rows may leave the hot store with retention without the counters going down).
-- A trigger per table: every way a row is inserted (the runner, dead letters, the reaper, a bulk
-- load) counts, in the same transaction. Counters only go up (Prometheus counters): a dead
-- letter requeued after a fix keeps its count, and its new outcome adds one more.
-- `shard` is 0 on SQLite (one writer at a time); PostgreSQL spreads writers over 16 shards.
CREATE TABLE IF NOT EXISTS event_counters (
    type     TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    n        INTEGER NOT NULL,
    PRIMARY KEY (type, outcome, reason, shard)
);

CREATE TABLE IF NOT EXISTS offer_counters (
    engine   TEXT NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    n        INTEGER NOT NULL,
    PRIMARY KEY (engine, shard)
);

INSERT INTO event_counters (type, outcome, reason, shard, n)
SELECT coalesce(type, ''), outcome, coalesce(reason, ''), 0, count(*)
FROM processed_events GROUP BY 1, 2, 3;

INSERT INTO offer_counters (engine, shard, n)
SELECT engine, 0, count(*) FROM offers GROUP BY 1;

CREATE TRIGGER IF NOT EXISTS count_event AFTER INSERT ON processed_events
BEGIN
    INSERT INTO event_counters (type, outcome, reason, shard, n)
    VALUES (coalesce(NEW.type, ''), NEW.outcome, coalesce(NEW.reason, ''), 0, 1)
    ON CONFLICT (type, outcome, reason, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS count_offer AFTER INSERT ON offers
BEGIN
    INSERT INTO offer_counters (engine, shard, n) VALUES (NEW.engine, 0, 1)
    ON CONFLICT (engine, shard) DO UPDATE SET n = n + 1;
END;

-- The exporter's fold of recent outcomes and retention read by finish time.
CREATE INDEX IF NOT EXISTS events_by_finished ON processed_events (finished_at);
