-- Before a dead letter is requeued, its recorded outcome is removed so it can be processed.
DELETE FROM processed_events WHERE event_id = :event_id AND outcome = 'dead_letter';
