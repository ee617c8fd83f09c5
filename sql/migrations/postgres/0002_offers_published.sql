-- Version 2: SQLite gets the offers_published index, which PostgreSQL had from version 1; the
-- same number on both dialects means the same tables and indexes.
CREATE INDEX IF NOT EXISTS offers_published ON offers (published_at) WHERE published_at IS NOT NULL;
