-- The 10 largest whale trades ever recorded, by quote volume (the demo's summary).
SELECT
  symbol,
  exchange,
  side,
  "timestamp",
  price,
  quantity,
  quote_volume,
  quote_asset,
  size_tier,
  alert_id
FROM crypto_pulse.whale_trades
ORDER BY quote_volume DESC, "timestamp", alert_id
LIMIT 10
