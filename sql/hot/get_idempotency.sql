SELECT request_hash, status, body, created_at
FROM api_idempotency
WHERE key_id = :key_id AND idem_key = :idem_key;
