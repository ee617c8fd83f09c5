-- The waiting decision is taken (in the transaction that records the event's outcome).
UPDATE scheduled_decisions SET decided_at = :now
WHERE event_id = :event_id AND decided_at IS NULL;
