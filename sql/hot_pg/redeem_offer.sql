-- Single use: only the first redemption of an unexpired code changes a row; a code a
-- counter-offer replaced (offer_voids) is never redeemed.
UPDATE offers SET redeemed_at = %(now)s
WHERE code = %(code)s AND redeemed_at IS NULL AND expires_at > %(now)s
  AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = offers.offer_id);
