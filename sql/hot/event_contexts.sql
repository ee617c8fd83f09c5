-- What a batch of events reads before it decides, in one statement (one read transaction): for
-- each event (:items is a JSON array of [event_id, session_id, user_id], in batch order) its
-- outcome if it already has one, its session's state, and its customer's last offer.
WITH item AS (
    SELECT CAST(key AS INTEGER) AS i,
           json_extract(value, '$[0]') AS event_id,
           json_extract(value, '$[1]') AS session_id,
           json_extract(value, '$[2]') AS user_id
    FROM json_each(:items)
)
SELECT item.i,
       o.outcome, o.reason, o.offer_id, o.error, o.attempts,
       s.session_id, s.user_id, s.status, s.cart_value, s.margin, s.currency, s.inventory,
       s.last_event_id, s.last_event_at,
       (SELECT max(created_at) FROM offers WHERE offers.user_id = item.user_id) AS last_offer_at
FROM item
LEFT JOIN processed_events AS o ON o.event_id = item.event_id
LEFT JOIN sessions AS s ON s.session_id = item.session_id
ORDER BY item.i;
