-- Single use: only the first redemption of an unexpired code changes a row; a code a
-- counter-offer replaced (offer_voids) is never redeemed; with a user id, only that customer's
-- code is; with a currency, only an offer in it; with an order id, only for an order no other
-- code was redeemed for (one discount per order; the caller holds the order's lock, and a unique
-- index backs it). All of it in this one UPDATE, so no other transaction can come in between; the
-- offer as redeemed comes back (no row: not redeemed, the caller reads why).
UPDATE offers SET redeemed_at = :now, redeemed_order_id = :order_id
WHERE code = :code AND redeemed_at IS NULL AND expires_at > :now
  AND (CAST(:user_id AS TEXT) IS NULL OR user_id = :user_id)
  AND (CAST(:currency AS TEXT) IS NULL OR currency = :currency)
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = offers.offer_id)
  AND (CAST(:order_id AS TEXT) IS NULL
       OR NOT EXISTS (SELECT 1 FROM offers AS o WHERE o.redeemed_order_id = :order_id))
RETURNING offer_id, discount_pct, currency, expires_at, redeemed_at, user_id, redeemed_order_id;
