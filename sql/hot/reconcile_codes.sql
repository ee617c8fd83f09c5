-- The chaos run's money check, per customer: codes still usable (not redeemed, not replaced by a
-- counter-offer), and offers made after one of theirs was redeemed (a turn racing a redemption).
SELECT u.user_id,
       (SELECT count(*) FROM offers AS o
         WHERE o.user_id = u.user_id AND o.redeemed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM offer_voids AS v WHERE v.offer_id = o.offer_id)
       ) AS live_codes,
       (SELECT count(*) FROM offers AS r JOIN offers AS o
           ON o.user_id = r.user_id AND o.offer_id <> r.offer_id AND o.created_at >= r.created_at
         WHERE r.user_id = u.user_id AND r.redeemed_at IS NOT NULL
       ) AS after_redemption
FROM (SELECT DISTINCT user_id FROM offers) AS u;
