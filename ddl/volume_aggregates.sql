CREATE TABLE crypto_pulse.volume_aggregates (
  `window_start` timestamp,
  `window_end` timestamp,
  `symbol` string,
  `exchange` string,
  `trade_count` bigint,
  `total_volume` double,
  `total_quote_volume` double,
  `vwap` double,
  `min_price` double,
  `max_price` double
)
PARTITIONED BY (day(`window_start`), `symbol`)
LOCATION 's3://${BUCKET}/warehouse/crypto_pulse.db/volume_aggregates'
TBLPROPERTIES ('table_type'='ICEBERG', 'format'='parquet')
