-- Single use: only the first redemption of an unexpired code changes a row.
UPDATE offers SET redeemed_at = :now
WHERE offer_id = :offer_id AND redeemed_at IS NULL AND expires_at > :now;
