-- Rows in the cold store's archive, per table (sgr retention run --json).
SELECT (SELECT count(*) FROM archived_processed_events) AS processed_events,
       (SELECT count(*) FROM archived_offers) AS offers,
       (SELECT count(*) FROM archived_turns) AS turns,
       (SELECT count(*) FROM archived_offer_voids) AS offer_voids;
