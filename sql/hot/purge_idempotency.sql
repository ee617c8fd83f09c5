-- Idempotency-Key answers past their retention, all keys at once (now and then, by the API).
DELETE FROM api_idempotency WHERE created_at < :before;
