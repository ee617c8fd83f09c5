SELECT * FROM turns WHERE event_id = %(event_id)s;
