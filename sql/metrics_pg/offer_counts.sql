-- Offers by engine (sgr_offers_total).
SELECT engine, count(*) AS n FROM offers GROUP BY engine;
