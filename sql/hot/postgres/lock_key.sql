-- A lock on one key, inside a transaction, held until COMMIT or ROLLBACK (or the session's end):
-- a customer's money decisions (the key is the user id: lock_customer, the offer window across
-- hosts) or a session's turn numbering ('turns:' and the session id). The next statement, READ
-- COMMITTED, has a new snapshot: it sees every write of the transaction that held it before.
-- The same keys as the release before (hashtext of the user id, of 'turns:' || session id).
SELECT pg_advisory_xact_lock(hashtext(:key));
