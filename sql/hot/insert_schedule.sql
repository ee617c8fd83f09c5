-- An abandonment's decision waits until due_at (docs/recovery.md); once per event.
INSERT INTO scheduled_decisions (event_id, session_id, user_id, payload, occurred_at, due_at,
                                 deferred, scheduled_at)
VALUES (:event_id, :session_id, :user_id, :payload, :occurred_at, :due_at, :deferred, :now)
ON CONFLICT (event_id) DO NOTHING;
