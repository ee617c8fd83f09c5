-- What the pipeline reads before it decides, in one statement (one snapshot): the event's outcome
-- if it already has one ('scheduled' while its decision waits), the session's state before the event, the customer's last offer.
SELECT coalesce(o.outcome, CASE WHEN d.event_id IS NOT NULL THEN 'scheduled' END) AS outcome,
       coalesce(o.reason, CASE WHEN o.event_id IS NULL THEN d.deferred END) AS reason,
       o.offer_id, o.error, coalesce(o.attempts, d.claims) AS attempts, d.due_at,
       s.session_id, s.user_id, s.status, s.cart_value, s.margin, s.currency, s.inventory,
       s.last_event_id, s.last_event_at,
       (SELECT max(created_at) FROM offers WHERE user_id = :user_id) AS last_offer_at
FROM (SELECT 1) AS one
LEFT JOIN processed_events AS o ON o.event_id = :event_id
LEFT JOIN scheduled_decisions AS d ON d.event_id = :event_id
LEFT JOIN sessions AS s ON s.session_id = :session_id;
