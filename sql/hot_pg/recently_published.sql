-- Offers published since a moment: the reaper checks they are still in Redis (a crash of Redis
-- with AOF everysec can lose the last second of stream entries).
SELECT * FROM offers WHERE published_at >= %(since)s ORDER BY published_at;
