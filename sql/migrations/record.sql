-- A version applied, in the transaction that applied it.
INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :now);
