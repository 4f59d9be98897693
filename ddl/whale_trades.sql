CREATE TABLE crypto_pulse.whale_trades (
  `event_id` string,
  `exchange` string,
  `symbol` string,
  `price` double,
  `quantity` double,
  `quote_volume` double,
  `side` string,
  `timestamp` timestamp,
  `ingestion_timestamp` timestamp,
  `alert_id` string,
  `base_asset` string,
  `quote_asset` string,
  `size_tier` string,
  `threshold` double,
  `detected_at` timestamp
)
PARTITIONED BY (day(`timestamp`), `symbol`)
LOCATION 's3://${BUCKET}/warehouse/crypto_pulse.db/whale_trades'
TBLPROPERTIES ('table_type'='ICEBERG', 'format'='parquet')
