-- The chaos run's reconciliation: the event each session's state was last set by.
SELECT session_id, last_event_id FROM sessions;
