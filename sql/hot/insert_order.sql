-- Every order_completed, with what its optional order block says (attribution).
INSERT INTO orders (event_id, order_id, session_id, user_id, value, currency, code,
                    occurred_at, recorded_at)
VALUES (:event_id, :order_id, :session_id, :user_id, :value, :currency, :code, :occurred_at,
        :now)
ON CONFLICT (event_id) DO NOTHING;
