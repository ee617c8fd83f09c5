UPDATE offer_voids SET published_at = :now WHERE offer_id = :offer_id AND published_at IS NULL;
