INSERT INTO lift_carts (event_id, experiment, grp, user_id, session_id, segment, cap_pct,
                        cart_value, margin, currency, offer_id, decided_at)
VALUES (:event_id, :experiment, :grp, :user_id, :session_id, :segment, :cap_pct,
        :cart_value, :margin, :currency, :offer_id, :decided_at)
ON CONFLICT (event_id) DO NOTHING;
