-- A customer's recent record for the repeat-abandoner rules (worker/domain/rules.py): offers
-- received since :since (abandonment offers and counter-offers alike), abandonments since
-- :since (other than :event_id, the one being decided), and codes redeemed since :since.
SELECT
    (SELECT count(*) FROM offers WHERE user_id = :user_id AND created_at >= :since) AS offers,
    (SELECT count(*) FROM processed_events
      WHERE user_id = :user_id AND type = 'cart_abandoned' AND occurred_at >= :since
        AND event_id <> :event_id)
    + (SELECT count(*) FROM scheduled_decisions AS d
        WHERE d.user_id = :user_id AND d.occurred_at >= :since AND d.event_id <> :event_id
          AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id))
      AS abandonments,
    (SELECT count(*) FROM offers
      WHERE user_id = :user_id AND redeemed_at IS NOT NULL AND redeemed_at >= :since) AS redeemed;
