-- Several offers by id in one statement (:offer_ids: a JSON array); a re-run batch's replays.
SELECT * FROM offers WHERE offer_id IN (SELECT value FROM json_each(:offer_ids));
