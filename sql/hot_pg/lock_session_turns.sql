-- Inside a transaction: one session's turns are numbered one transaction at a time (held until
-- COMMIT), so two hosts never compute the same next number.
SELECT pg_advisory_xact_lock(hashtext('turns:' || %(session_id)s));
