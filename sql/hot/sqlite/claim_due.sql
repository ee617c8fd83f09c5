-- A worker claims due decisions (a JSON array of event ids) for :claimant until its lease ends:
-- only those not decided, without an outcome, and not held by another live claim. The claimant
-- may claim again what it holds (a retried job). Returns the events to decide.
UPDATE scheduled_decisions
SET claimed_by = :claimant, claimed_at = :now, claims = claims + 1
WHERE event_id IN (SELECT value FROM json_each(:event_ids))
  AND decided_at IS NULL
  AND (claimed_at IS NULL OR claimed_at < :claimed_before OR claimed_by = :claimant)
  AND NOT EXISTS (SELECT 1 FROM processed_events AS p
                  WHERE p.event_id = scheduled_decisions.event_id)
RETURNING event_id, payload, due_at;
