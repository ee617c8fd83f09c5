-- The outbox marks a batch's offers published in one statement (an array of ids).
UPDATE offers SET published_at = :now
WHERE offer_id = ANY(:offer_ids::text[]) AND published_at IS NULL;
