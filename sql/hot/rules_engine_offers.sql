-- Why offers came from the rules engine (`sgr demo`'s plain sentence): the problems recorded with
-- each offer the rules engine wrote (NULL: it was the engine chosen, nothing failed).
SELECT p.error AS error
FROM processed_events AS p
JOIN offers AS o ON o.offer_id = p.offer_id
WHERE o.engine = 'policy';
