-- An Idempotency-Key older than its retention is forgotten (then claimed afresh).
DELETE FROM api_idempotency WHERE key_id = :key_id AND idem_key = :idem_key AND created_at < :before;
