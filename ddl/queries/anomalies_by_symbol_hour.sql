-- Volume anomalies per symbol and UTC hour over the last 7 days of data (measured back from the
-- newest anomaly window): how many, on how many exchanges, the strongest z-score and the quote
-- volume of the anomalous windows. Newest hour first.
WITH bounds AS (
  SELECT max(window_start) - INTERVAL '7' DAY AS since
  FROM crypto_pulse.anomalies
)
SELECT
  a.symbol,
  date_trunc('hour', a.window_start) AS window_hour,
  count(*) AS anomalies,
  count(DISTINCT a.exchange) AS exchanges,
  max(a.z_score) AS max_z_score,
  sum(a.total_quote_volume) AS total_quote_volume
FROM crypto_pulse.anomalies AS a
CROSS JOIN bounds
WHERE a.window_start >= bounds.since
GROUP BY a.symbol, date_trunc('hour', a.window_start)
ORDER BY window_hour DESC, symbol
