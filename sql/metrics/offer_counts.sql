-- Offers by engine (sgr_offers_total): the counters kept as offers are recorded (migration 0004).
SELECT engine, sum(n) AS n FROM offer_counters GROUP BY engine;
