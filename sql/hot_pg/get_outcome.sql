SELECT event_id, outcome, reason, offer_id, error, attempts
FROM processed_events
WHERE event_id = %(event_id)s;
