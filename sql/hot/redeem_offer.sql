-- Single use: only the first redemption of an unexpired code changes a row.
UPDATE offers SET redeemed_at = :now
WHERE code = :code AND redeemed_at IS NULL AND expires_at > :now;
