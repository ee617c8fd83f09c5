SELECT experiment, holdout_share, started_at FROM experiments ORDER BY started_at;
