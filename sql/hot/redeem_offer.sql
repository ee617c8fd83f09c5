-- Single use: only the first redemption of an unexpired code changes a row; a code a
-- counter-offer replaced (offer_voids) is never redeemed; with a user id, only that customer's
-- code is (all of it in this one UPDATE, so no other transaction can come in between).
UPDATE offers SET redeemed_at = :now
WHERE code = :code AND redeemed_at IS NULL AND expires_at > :now
  AND (CAST(:user_id AS TEXT) IS NULL OR user_id = :user_id)
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = offers.offer_id);
