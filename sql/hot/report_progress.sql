-- Live figures for `sgr loadgen`: events finished since the run started, offers, dead letters.
SELECT count(*) AS processed,
       coalesce(sum(outcome = 'offer'), 0) AS offers,
       coalesce(sum(outcome = 'dead_letter'), 0) AS dead_letters
FROM processed_events
WHERE finished_at >= :since;
