-- Alerts of every job per type and symbol over the last 7 days of data (measured back from the
-- newest alert): how many, on how many exchanges (a spread spans exchanges: none), when, and the
-- largest metric (z-score, quote volume or spread %).
WITH bounds AS (
  SELECT max(event_time) - INTERVAL '7' DAY AS since
  FROM crypto_pulse.alerts
)
SELECT
  a.alert_type,
  a.symbol,
  count(*) AS alerts,
  count(DISTINCT a.exchange) AS exchanges,
  min(a.event_time) AS first_event_time,
  max(a.event_time) AS last_event_time,
  max(a.metric) AS max_metric
FROM crypto_pulse.alerts AS a
CROSS JOIN bounds
WHERE a.event_time >= bounds.since
GROUP BY a.alert_type, a.symbol
ORDER BY alert_type, symbol
