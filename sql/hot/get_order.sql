-- One order_completed as kept (attribution), with why its code was not redeemed, if it was not.
SELECT event_id, order_id, session_id, user_id, value, currency, code, code_refused, occurred_at,
       recorded_at
FROM orders WHERE event_id = :event_id;
