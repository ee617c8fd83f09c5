-- The versions applied, oldest first.
SELECT version, name FROM schema_migrations ORDER BY version;
