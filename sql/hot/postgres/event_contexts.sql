-- What a batch of events reads before it decides, in one statement (one snapshot): for each
-- event (three arrays of the same length, in batch order) its outcome if it already has one, its
-- session's state, and its customer's last offer.
SELECT item.i,
       coalesce(o.outcome, CASE WHEN d.event_id IS NOT NULL THEN 'scheduled' END) AS outcome,
       coalesce(o.reason, CASE WHEN o.event_id IS NULL THEN d.deferred END) AS reason,
       o.offer_id, o.error, coalesce(o.attempts, d.claims) AS attempts, d.due_at,
       s.session_id, s.user_id, s.status, s.cart_value, s.margin, s.currency, s.inventory,
       s.last_event_id, s.last_event_at,
       (SELECT max(created_at) FROM offers WHERE offers.user_id = item.user_id) AS last_offer_at
FROM unnest(:event_ids::text[], :session_ids::text[], :user_ids::text[])
     WITH ORDINALITY AS item (event_id, session_id, user_id, i)
LEFT JOIN processed_events AS o ON o.event_id = item.event_id
LEFT JOIN scheduled_decisions AS d ON d.event_id = item.event_id
LEFT JOIN sessions AS s ON s.session_id = item.session_id
ORDER BY item.i;
