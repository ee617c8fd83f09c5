SELECT * FROM offers WHERE offer_id = %(offer_id)s;
