SELECT count(*) AS customers,
       round(avg(lifetime_value), 2) AS avg_ltv,
       round(quantile_cont(lifetime_value, 0.5), 2) AS median_ltv,
       round(avg(churn_probability), 3) AS avg_churn
FROM customers;
