-- A session's newest turns (up to :limit), oldest first.
SELECT * FROM (
    SELECT * FROM turns WHERE session_id = :session_id ORDER BY turn DESC LIMIT :limit
) AS newest ORDER BY turn;
