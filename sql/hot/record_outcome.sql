-- One outcome per event, whichever host writes first: the primary key decides, a second writer
-- waits for the first one's transaction and then changes nothing. Unpublished until the outbox
-- puts it on the outcome stream (published_at).
INSERT INTO processed_events (event_id, session_id, user_id, type, outcome, reason, offer_id,
                              error, error_kind, attempts, occurred_at, enqueued_at, started_at,
                              finished_at, timings)
VALUES (:event_id, :session_id, :user_id, :type, :outcome, :reason,
        :offer_id, :error, :error_kind, :attempts, :occurred_at, :enqueued_at, :started_at,
        :finished_at, :timings)
ON CONFLICT (event_id) DO NOTHING;
