-- An order is attributed to the customer's latest eligible cart not yet attributed, decided
-- within the attribution window before it (one order per cart; order_event_id is unique).
UPDATE lift_carts
SET order_event_id = :order_event_id, order_value = :order_value, ordered_at = :ordered_at
WHERE event_id = (
    SELECT event_id FROM lift_carts
    WHERE user_id = :user_id AND order_event_id IS NULL
      AND decided_at <= :ordered_at AND decided_at >= :since
    ORDER BY decided_at DESC
    LIMIT 1
);
