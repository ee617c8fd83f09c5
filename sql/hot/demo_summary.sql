-- One row of figures for `sgr demo` and the reports: outcomes, engines, and the money check.
SELECT
    (SELECT count(*) FROM processed_events) AS events,
    (SELECT count(*) FROM processed_events WHERE outcome = 'offer') AS offers,
    (SELECT count(*) FROM processed_events WHERE outcome = 'no_offer') AS no_offer,
    (SELECT count(*) FROM processed_events WHERE outcome = 'dead_letter') AS dead_letter,
    -- abandonments whose decision waits (docs/recovery.md)
    (SELECT count(*) FROM scheduled_decisions AS d
      WHERE d.decided_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM processed_events AS p WHERE p.event_id = d.event_id))
        AS scheduled,
    (SELECT count(*) FROM offers WHERE discount_pct > cap_pct) AS over_cap,
    (SELECT count(*) FROM offers WHERE published_at IS NULL) AS unpublished,
    (SELECT count(*) FROM processed_events
      WHERE outcome = 'offer' OR (outcome = 'no_offer' AND error IS NOT NULL)) AS engine_asked,
    (SELECT count(*) FROM processed_events WHERE error LIKE '%engine\_%' ESCAPE '\') AS engine_failed,
    -- answers whose numbers broke a bound: refused by the schema check or by the rules
    (SELECT count(*) FROM processed_events
      WHERE error LIKE '%above\_cap%' ESCAPE '\' OR error LIKE '%[maximum]%'
         OR error LIKE '%[minimum]%') AS bound_interventions,
    (SELECT count(*) FROM processed_events WHERE error IS NOT NULL AND outcome != 'dead_letter')
        AS guardrail_interventions;
