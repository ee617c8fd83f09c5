-- Live figures for `sgr loadgen`: events finished since the run started, offers, dead letters.
SELECT count(*) AS processed,
       coalesce(sum(CASE WHEN outcome = 'offer' THEN 1 ELSE 0 END), 0) AS offers,
       coalesce(sum(CASE WHEN outcome = 'dead_letter' THEN 1 ELSE 0 END), 0) AS dead_letters
FROM processed_events
WHERE finished_at >= :since;
