-- Held while sql/hot_pg/schema.sql runs: workers opening the store at once create it once.
SELECT pg_advisory_xact_lock(hashtext('sgr:hot_pg:schema'));
