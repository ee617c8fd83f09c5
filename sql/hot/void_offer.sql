-- A counter-offer replaces the customer's live offer: its code can no longer be redeemed. A
-- redeemed offer is never voided (the customer used it; voiding it would hide that).
INSERT INTO offer_voids (offer_id, superseded_by, voided_at)
SELECT :offer_id, :superseded_by, :now
WHERE EXISTS (SELECT 1 FROM offers WHERE offer_id = :offer_id AND redeemed_at IS NULL)
ON CONFLICT (offer_id) DO NOTHING;
