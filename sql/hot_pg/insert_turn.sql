-- A turn takes the session's next number; nothing when the event already has its turn.
INSERT INTO turns (session_id, turn, event_id, user_id, message, route, reason, reply, reasoning,
                   offer_id, discount_pct, cap_pct, code, engine, model, problems, created_at)
SELECT %(session_id)s, coalesce(max(turn), 0) + 1, %(event_id)s, %(user_id)s, %(message)s,
       %(route)s, %(reason)s, %(reply)s, %(reasoning)s, %(offer_id)s, %(discount_pct)s,
       %(cap_pct)s, %(code)s, %(engine)s, %(model)s, %(problems)s, %(created_at)s::timestamptz
FROM turns WHERE session_id = %(session_id)s
ON CONFLICT DO NOTHING
RETURNING turn;
