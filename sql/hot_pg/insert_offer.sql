INSERT INTO offers (offer_id, event_id, session_id, user_id, currency, cart_value, margin, segment,
                    cap_pct, discount_pct, code, expires_at, engine, model, reasoning, message,
                    guardrail, created_at)
VALUES (%(offer_id)s, %(event_id)s, %(session_id)s, %(user_id)s, %(currency)s, %(cart_value)s,
        %(margin)s, %(segment)s, %(cap_pct)s, %(discount_pct)s, %(code)s, %(expires_at)s,
        %(engine)s, %(model)s, %(reasoning)s, %(message)s, %(guardrail)s, %(created_at)s);
