-- A due decision that came due (late) inside the customer's quiet hours waits again until their
-- end; its claim is released.
UPDATE scheduled_decisions
SET due_at = :due_at, deferred = :deferred, claimed_by = NULL, claimed_at = NULL
WHERE event_id = :event_id AND decided_at IS NULL;
