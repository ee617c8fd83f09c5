SELECT discount_pct, cap_pct FROM offers ORDER BY discount_pct DESC LIMIT 1;
