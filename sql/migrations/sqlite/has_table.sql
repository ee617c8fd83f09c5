-- A row if the store has its versions table (read before any lock is taken).
SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations';
