-- A row if the store has its versions table (read before any lock is taken).
SELECT 1 AS found FROM pg_catalog.pg_tables
WHERE schemaname = current_schema() AND tablename = 'schema_migrations';
