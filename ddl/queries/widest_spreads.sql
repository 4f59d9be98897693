-- The 20 widest cross-exchange spreads of the last day of data (measured back from the newest
-- spread window), alerting or not: which exchange paid more and by how much.
WITH bounds AS (
  SELECT max(window_start) - INTERVAL '1' DAY AS since
  FROM crypto_pulse.spreads
)
SELECT
  s.window_start,
  s.symbol,
  s.spread_pct,
  s.high_exchange,
  s.max_vwap,
  s.low_exchange,
  s.min_vwap,
  s.exchange_count,
  s.is_alert
FROM crypto_pulse.spreads AS s
CROSS JOIN bounds
WHERE s.window_start >= bounds.since
ORDER BY s.spread_pct DESC, s.window_start, s.symbol
LIMIT 20
