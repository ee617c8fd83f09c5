-- An order closes the customer's live offers (any session): every unredeemed, unexpired code of
-- theirs not yet void, except the code the order used. Returns what was voided, for the notice.
INSERT INTO offer_voids (offer_id, superseded_by, voided_at, reason)
SELECT o.offer_id, :event_id, :now, 'order_completed'
FROM offers AS o
WHERE o.user_id = :user_id AND o.redeemed_at IS NULL AND o.expires_at > :now
  AND (CAST(:code AS TEXT) IS NULL OR o.code <> :code)
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = o.offer_id)
ON CONFLICT (offer_id) DO NOTHING
RETURNING offer_id;
