-- The outbox marks a batch's offers published in one statement (an array of ids).
UPDATE offers SET published_at = %(now)s
WHERE offer_id = ANY(%(offer_ids)s::text[]) AND published_at IS NULL;
