SELECT max(created_at) AS last_offer_at
FROM offers
WHERE user_id = %(user_id)s;
