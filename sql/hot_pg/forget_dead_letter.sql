-- Before a dead letter is requeued, its recorded outcome is removed so it can be processed.
DELETE FROM processed_events WHERE event_id = %(event_id)s AND outcome = 'dead_letter';
