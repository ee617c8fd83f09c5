SELECT * FROM offers WHERE published_at IS NULL ORDER BY created_at LIMIT %(limit)s;
