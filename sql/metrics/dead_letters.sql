-- Dead-letter outcomes in the hot store now (sgr_dead_letters): an index-only count (the
-- events_by_outcome index), as cheap as the dead letters are few.
SELECT count(*) AS n FROM processed_events WHERE outcome = 'dead_letter';
