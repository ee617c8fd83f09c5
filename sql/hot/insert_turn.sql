-- A turn takes the session's next number; nothing when the event already has its turn. Across
-- hosts the numbering is locked first (stores/hotstore.py insert_turn).
INSERT INTO turns (session_id, turn, event_id, user_id, message, route, reason, reply, reasoning,
                   offer_id, discount_pct, cap_pct, code, engine, model, problems, created_at)
SELECT :session_id, coalesce(max(turn), 0) + 1, :event_id, :user_id, :message, :route, :reason,
       :reply, :reasoning, :offer_id, :discount_pct, :cap_pct, :code, :engine, :model, :problems,
       :created_at
FROM turns WHERE session_id = :session_id
ON CONFLICT DO NOTHING
RETURNING turn;
