-- Turns of conversations that ended before :cutoff (no turn of the session since), published,
-- whose offer (if any) has left the hot store.
SELECT t.* FROM turns AS t
WHERE t.created_at < :cutoff
  AND t.published_at IS NOT NULL
  AND (t.offer_id IS NULL OR NOT EXISTS (SELECT 1 FROM offers AS o WHERE o.offer_id = t.offer_id))
  AND NOT EXISTS (SELECT 1 FROM turns AS n WHERE n.session_id = t.session_id
                  AND n.created_at >= :cutoff)
LIMIT :limit;
