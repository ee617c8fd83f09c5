SELECT session_id, user_id, status, cart_value, margin, currency, inventory,
       last_event_id, last_event_at
FROM sessions
WHERE session_id = %(session_id)s;
