-- The answer given under a claimed Idempotency-Key (same transaction as the claim).
UPDATE api_idempotency SET status = :status, body = :body
WHERE key_id = :key_id AND idem_key = :idem_key;
