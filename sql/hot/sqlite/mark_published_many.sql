-- The outbox marks a batch's offers published in one statement (:offer_ids: a JSON array).
UPDATE offers SET published_at = :now
WHERE offer_id IN (SELECT value FROM json_each(:offer_ids)) AND published_at IS NULL;
