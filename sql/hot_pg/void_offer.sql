-- A counter-offer replaces the customer's live offer: its code can no longer be redeemed.
INSERT INTO offer_voids (offer_id, superseded_by, voided_at)
VALUES (%(offer_id)s, %(superseded_by)s, %(now)s)
ON CONFLICT (offer_id) DO NOTHING;
