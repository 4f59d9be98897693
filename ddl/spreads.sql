CREATE TABLE crypto_pulse.spreads (
  `window_start` timestamp,
  `window_end` timestamp,
  `symbol` string,
  `exchange_count` int,
  `max_vwap` double,
  `min_vwap` double,
  `high_exchange` string,
  `low_exchange` string,
  `spread_pct` double,
  `is_alert` boolean
)
PARTITIONED BY (day(`window_start`), `symbol`)
LOCATION 's3://${BUCKET}/warehouse/crypto_pulse.db/spreads'
TBLPROPERTIES ('table_type'='ICEBERG', 'format'='parquet')
