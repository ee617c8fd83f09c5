-- The chaos run's reconciliation: every recorded outcome.
SELECT event_id, outcome, reason, offer_id, attempts FROM processed_events;
