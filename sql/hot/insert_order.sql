-- Every order_completed, with what its optional order block says (attribution), and why its
-- code was not redeemed (code_refused: the refusal's kind; NULL when redeemed or no code).
INSERT INTO orders (event_id, order_id, session_id, user_id, value, currency, code,
                    code_refused, occurred_at, recorded_at)
VALUES (:event_id, :order_id, :session_id, :user_id, :value, :currency, :code, :code_refused,
        :occurred_at, :now)
ON CONFLICT (event_id) DO NOTHING;
