-- Version 9: an order_completed whose order.code could not be redeemed keeps why, as the kind
-- worker/redemption.py gave (unknown, expired, voided, not_yours, currency_mismatch, order_used,
-- redeemed, malformed). NULL: the order named no code, or its code was redeemed for it.
ALTER TABLE orders ADD COLUMN code_refused TEXT;
