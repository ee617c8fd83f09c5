-- An event's recorded outcome as the API shows it: the outcome, its times, and the reply of a
-- negotiation turn (turns.event_id is unique); an abandonment whose decision waits reads
-- 'scheduled' with its due time (its reason 'quiet_hours' when deferred), and a decision that
-- waited says when it was due.
SELECT p.event_id, p.type, p.user_id, p.session_id, p.outcome, p.reason, p.offer_id, p.error,
       p.attempts, p.occurred_at, p.enqueued_at, p.started_at, p.finished_at,
       t.reply, t.route, t.turn, d.due_at
FROM processed_events AS p
LEFT JOIN turns AS t ON t.event_id = p.event_id
LEFT JOIN scheduled_decisions AS d ON d.event_id = p.event_id
WHERE p.event_id = :event_id
UNION ALL
SELECT d.event_id, 'cart_abandoned', d.user_id, d.session_id, 'scheduled', d.deferred, NULL,
       NULL, d.claims, d.occurred_at, NULL, NULL, NULL, NULL, NULL, NULL, d.due_at
FROM scheduled_decisions AS d
WHERE d.event_id = :event_id
  AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id);
