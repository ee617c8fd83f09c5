-- Newest event wins: an older event never rolls the state back; 'ordered' is final.
-- Returns the session as it now is, or no row when the event was older than the state (stale)
-- or came from another user than the session's. A concurrent writer of the same session waits
-- for the row lock and the WHERE is then evaluated on the row as committed.
INSERT INTO sessions (session_id, user_id, status, cart_value, margin, currency, inventory,
                      last_event_id, last_event_at, updated_at)
VALUES (:session_id, :user_id, coalesce(:status, 'active'), :cart_value, :margin,
        :currency, :inventory, :event_id, :occurred_at, :now)
ON CONFLICT (session_id) DO UPDATE SET
    status = CASE WHEN sessions.status = 'ordered' THEN 'ordered'
                  ELSE coalesce(:status, sessions.status) END,
    cart_value = coalesce(excluded.cart_value, sessions.cart_value),
    margin = coalesce(excluded.margin, sessions.margin),
    currency = coalesce(excluded.currency, sessions.currency),
    inventory = coalesce(excluded.inventory, sessions.inventory),
    last_event_id = excluded.last_event_id,
    last_event_at = excluded.last_event_at,
    updated_at = excluded.updated_at
WHERE (excluded.last_event_at, excluded.last_event_id)
      > (sessions.last_event_at, sessions.last_event_id)
  AND sessions.user_id = excluded.user_id  -- a session belongs to one user
RETURNING session_id, user_id, status, cart_value, margin, currency, inventory, last_event_id,
          last_event_at;
