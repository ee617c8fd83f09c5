-- What a batch of events reads before it decides, in one statement (one read transaction): for
-- each event (three JSON arrays of the same length, in batch order) its outcome if it already
-- has one ('scheduled' while its decision waits: docs/recovery.md), its session's state, and its customer's last offer.
WITH item AS (
    SELECT CAST(e.key AS INTEGER) AS i, e.value AS event_id, s.value AS session_id,
           u.value AS user_id
    FROM json_each(:event_ids) AS e
    JOIN json_each(:session_ids) AS s ON s.key = e.key
    JOIN json_each(:user_ids) AS u ON u.key = e.key
)
SELECT item.i,
       coalesce(o.outcome, CASE WHEN d.event_id IS NOT NULL THEN 'scheduled' END) AS outcome,
       coalesce(o.reason, CASE WHEN o.event_id IS NULL THEN d.deferred END) AS reason,
       o.offer_id, o.error, coalesce(o.attempts, d.claims) AS attempts, d.due_at,
       s.session_id, s.user_id, s.status, s.cart_value, s.margin, s.currency, s.inventory,
       s.last_event_id, s.last_event_at,
       (SELECT max(created_at) FROM offers WHERE offers.user_id = item.user_id) AS last_offer_at
FROM item
LEFT JOIN processed_events AS o ON o.event_id = item.event_id
LEFT JOIN scheduled_decisions AS d ON d.event_id = item.event_id
LEFT JOIN sessions AS s ON s.session_id = item.session_id
ORDER BY item.i;
