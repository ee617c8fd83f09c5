-- A code's stored offer, as redemption checks it (the code carries nothing itself).
SELECT offer_id, discount_pct, currency, expires_at, redeemed_at FROM offers WHERE code = :code;
