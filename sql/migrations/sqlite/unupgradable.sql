-- A store without versions that no migration can take on, with the reason (one row each).
-- Made before offer codes were random and stored: its offers table ties each code to its offer id
-- (anyone knowing an id could write its code), so its codes must not stay live.
SELECT 'made before offer codes were random and stored (its codes derive from offer ids): '
       || 'move it aside, or start afresh with `sgr setup-data --force`' AS reason
FROM sqlite_master
WHERE type = 'table' AND name = 'offers' AND sql LIKE '%upper(offer_id)%';
