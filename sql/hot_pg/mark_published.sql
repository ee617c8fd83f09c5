UPDATE offers SET published_at = %(now)s WHERE offer_id = %(offer_id)s AND published_at IS NULL;
