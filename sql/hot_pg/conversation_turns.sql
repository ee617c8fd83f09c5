-- A session's newest turns (up to the limit), oldest first.
SELECT * FROM (
    SELECT * FROM turns WHERE session_id = %(session_id)s ORDER BY turn DESC LIMIT %(limit)s
) AS newest ORDER BY turn;
