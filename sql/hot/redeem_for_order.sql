-- An order that used one of the customer's codes redeems it (once; never a void or expired one,
-- never another customer's), as `sgr codes redeem --user` would.
UPDATE offers SET redeemed_at = :now
WHERE code = :code AND user_id = :user_id AND redeemed_at IS NULL AND expires_at > :now
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = offers.offer_id);
