INSERT INTO processed_events (event_id, session_id, user_id, type, outcome, reason, offer_id,
                              error, attempts, occurred_at, enqueued_at, started_at, finished_at,
                              timings)
VALUES (:event_id, :session_id, :user_id, :type, :outcome, :reason, :offer_id, :error, :attempts,
        :occurred_at, :enqueued_at, :started_at, :finished_at, :timings)
ON CONFLICT (event_id) DO NOTHING;
