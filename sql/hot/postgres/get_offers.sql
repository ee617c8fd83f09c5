-- Several offers by id in one statement (an array); a re-run batch's replays.
SELECT * FROM offers WHERE offer_id = ANY(:offer_ids::text[]);
