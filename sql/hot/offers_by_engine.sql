SELECT engine, coalesce(model, '') AS model, count(*) AS n FROM offers GROUP BY engine, model;
