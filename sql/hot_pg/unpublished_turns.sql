-- Replies committed but not yet on the result stream (a turn with an offer leaves as the offer).
SELECT * FROM turns WHERE published_at IS NULL ORDER BY created_at LIMIT %(limit)s;
