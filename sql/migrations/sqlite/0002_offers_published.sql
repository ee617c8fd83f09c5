-- Version 2: the reaper's recently_published read (offers by publication time) has the index
-- PostgreSQL had from version 1.
CREATE INDEX IF NOT EXISTS offers_published ON offers (published_at) WHERE published_at IS NOT NULL;
