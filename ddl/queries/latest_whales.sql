-- The latest whale trades: the 50 most recent of the last day of data (measured back from the
-- newest whale trade, so a table holding an old market still answers), newest first.
WITH bounds AS (
  SELECT max("timestamp") - INTERVAL '1' DAY AS since
  FROM crypto_pulse.whale_trades
)
SELECT
  w."timestamp",
  w.symbol,
  w.exchange,
  w.side,
  w.price,
  w.quantity,
  w.quote_volume,
  w.size_tier,
  w.threshold,
  w.alert_id
FROM crypto_pulse.whale_trades AS w
CROSS JOIN bounds
WHERE w."timestamp" >= bounds.since
ORDER BY w."timestamp" DESC, w.alert_id
LIMIT 50
