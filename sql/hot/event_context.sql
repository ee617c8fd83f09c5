-- What the pipeline reads before it decides, in one statement (one snapshot): the event's outcome
-- if it already has one, the session's state before the event, the customer's last offer.
SELECT o.outcome, o.reason, o.offer_id, o.error, o.attempts,
       s.session_id, s.user_id, s.status, s.cart_value, s.margin, s.currency, s.inventory,
       s.last_event_id, s.last_event_at,
       (SELECT max(created_at) FROM offers WHERE user_id = :user_id) AS last_offer_at
FROM (SELECT 1) AS one
LEFT JOIN processed_events AS o ON o.event_id = :event_id
LEFT JOIN sessions AS s ON s.session_id = :session_id;
