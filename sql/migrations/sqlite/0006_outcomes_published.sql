-- Version 6: every recorded outcome goes to the outcome stream through the outbox, as offers do:
-- published_at (NULL until it is on the stream; the reaper publishes what a dead worker left)
-- and error_kind (a dead letter's kind, the part of its error a shop may read). One index on
-- published_at serves both the outbox's "IS NULL" read and the reaper's "published since" check.
-- Outcomes recorded before this version predate the stream: marked published at the epoch, so
-- neither the outbox nor the reaper's re-publication window ever sends them.
ALTER TABLE processed_events ADD COLUMN published_at TEXT;
ALTER TABLE processed_events ADD COLUMN error_kind TEXT;
UPDATE processed_events SET published_at = '1970-01-01T00:00:00.000000+00:00';
CREATE INDEX IF NOT EXISTS events_published ON processed_events (published_at);
