INSERT INTO snapshot (key, value) VALUES (?, ?);
