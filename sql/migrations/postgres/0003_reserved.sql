-- Version 3: reserved for another branch's migration (this branch's is 0004, as assigned; the
-- runner wants versions without gaps). Nothing to do; dropped or renumbered at merge.
SELECT 1;
