UPDATE turns SET published_at = %(now)s WHERE event_id = %(event_id)s AND published_at IS NULL;
