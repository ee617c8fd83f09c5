-- The code already redeemed for an order, if any (one discount per order).
SELECT code FROM offers WHERE redeemed_order_id = :order_id;
