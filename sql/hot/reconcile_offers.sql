-- The chaos run's reconciliation: every offer, with whether it left through the outbox.
SELECT offer_id, event_id, session_id, user_id, engine, discount_pct, cap_pct, published_at
FROM offers;
