-- The offer window across hosts: inside the commit's transaction, one customer's offers are
-- decided one transaction at a time. The lock is held until COMMIT or ROLLBACK, and the next
-- statement (sql/hot_pg/last_offer_for_user.sql, READ COMMITTED: a new snapshot per statement)
-- sees every offer committed by the transaction that held it before.
SELECT pg_advisory_xact_lock(hashtext(%(user_id)s));
