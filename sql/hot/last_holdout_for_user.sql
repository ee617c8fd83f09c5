-- When this customer was last held out in this experiment: a held-out customer waits the offer
-- window as a treated one does, so both groups count their eligible carts alike.
SELECT max(decided_at) AS last_at
FROM lift_carts
WHERE user_id = :user_id AND experiment = :experiment AND grp = 'holdout';
