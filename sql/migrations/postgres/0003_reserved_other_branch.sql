-- Version 3: PLACEHOLDER of branch 'api' only (its own migration is 0005, as assigned; the
-- runner needs versions without gaps). Another branch's 0003 takes this number at merge: delete
-- this file then. It changes nothing.
SELECT 1;
