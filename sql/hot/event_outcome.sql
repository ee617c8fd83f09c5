-- An event's recorded outcome as the API shows it: the outcome, its times, and the reply of a
-- negotiation turn (turns.event_id is unique).
SELECT p.event_id, p.type, p.user_id, p.session_id, p.outcome, p.reason, p.offer_id, p.error,
       p.attempts, p.occurred_at, p.enqueued_at, p.started_at, p.finished_at,
       t.reply, t.route, t.turn
FROM processed_events AS p
LEFT JOIN turns AS t ON t.event_id = p.event_id
WHERE p.event_id = :event_id;
