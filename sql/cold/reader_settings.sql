-- A worker's read-only connection does one-row lookups: one thread, no parallel scan set-up per
-- query (and no idle DuckDB threads in each of many worker processes).
SET threads = 1;
