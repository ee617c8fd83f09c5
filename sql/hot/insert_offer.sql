INSERT INTO offers (offer_id, event_id, session_id, user_id, currency, cart_value, margin, segment,
                    cap_pct, discount_pct, code, expires_at, engine, model, reasoning, message,
                    guardrail, created_at)
VALUES (:offer_id, :event_id, :session_id, :user_id, :currency, :cart_value, :margin, :segment,
        :cap_pct, :discount_pct, :code, :expires_at, :engine, :model, :reasoning, :message,
        :guardrail, :created_at);
