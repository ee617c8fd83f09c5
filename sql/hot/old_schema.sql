-- A hot store made before codes were random and stored (its offers table ties codes to ids).
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offers' AND sql LIKE '%upper(offer_id)%';
