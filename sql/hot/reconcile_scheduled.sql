-- The chaos run's check of delayed decisions (docs/recovery.md): how many were scheduled, any
-- decided before their due time, any never decided, any that made an offer although their
-- session had an order before the due time, and how many an order closed.
SELECT
    (SELECT count(*) FROM scheduled_decisions) AS scheduled,
    (SELECT count(*) FROM scheduled_decisions AS d
       JOIN processed_events AS p ON p.event_id = d.event_id
      WHERE p.finished_at < d.due_at) AS decided_early,
    (SELECT count(*) FROM scheduled_decisions AS d
      WHERE NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id))
        AS undecided,
    (SELECT count(*) FROM scheduled_decisions AS d
       JOIN offers AS o ON o.event_id = d.event_id
      WHERE EXISTS (SELECT 1 FROM orders AS r
                     WHERE r.session_id = d.session_id AND r.occurred_at < d.due_at))
        AS offer_after_order,
    (SELECT count(*) FROM scheduled_decisions AS d
       JOIN processed_events AS p ON p.event_id = d.event_id
      WHERE p.reason = 'order_completed') AS closed_by_order;
