UPDATE turns SET published_at = :now WHERE event_id = :event_id AND published_at IS NULL;
