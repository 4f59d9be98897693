CREATE TABLE crypto_pulse.raw_trades (
  `event_id` string,
  `exchange` string,
  `symbol` string,
  `price` double,
  `quantity` double,
  `quote_volume` double,
  `side` string,
  `timestamp` timestamp,
  `ingestion_timestamp` timestamp
)
PARTITIONED BY (day(`timestamp`), `symbol`)
LOCATION 's3://${BUCKET}/warehouse/crypto_pulse.db/raw_trades'
TBLPROPERTIES ('table_type'='ICEBERG', 'format'='parquet')
