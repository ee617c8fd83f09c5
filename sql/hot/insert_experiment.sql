INSERT INTO experiments (experiment, holdout_share, started_at)
VALUES (:experiment, :holdout_share, :started_at)
ON CONFLICT (experiment) DO NOTHING;
