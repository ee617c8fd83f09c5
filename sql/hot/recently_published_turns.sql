-- Negotiation turns published since a moment: the reaper checks their replies are still in Redis
-- (a crash of Redis with AOF everysec can lose the last second of stream entries), as for offers.
SELECT * FROM turns WHERE published_at >= :since ORDER BY published_at;
