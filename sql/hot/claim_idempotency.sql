-- Claim an Idempotency-Key inside the redemption's transaction: a second request with the same
-- key waits for the first one's transaction and then inserts nothing (it reads the answer).
INSERT INTO api_idempotency (key_id, idem_key, request_hash, status, body, created_at)
VALUES (:key_id, :idem_key, :request_hash, 0, '', :now)
ON CONFLICT (key_id, idem_key) DO NOTHING;
