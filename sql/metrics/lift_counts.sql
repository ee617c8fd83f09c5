-- The running experiment's eligible carts and attributed orders per group (the index
-- lift_carts_by_experiment; one row per group).
SELECT grp, count(*) AS carts, count(order_event_id) AS orders,
       coalesce(sum(order_value), 0) AS revenue
FROM lift_carts
WHERE experiment = :experiment
GROUP BY grp;
