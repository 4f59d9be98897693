CREATE TABLE crypto_pulse.alerts (
  `alert_id` string,
  `alert_type` string,
  `symbol` string,
  `exchange` string,
  `event_time` timestamp,
  `detected_at` timestamp,
  `metric` double,
  `threshold` double,
  `details` string
)
PARTITIONED BY (day(`event_time`), `symbol`)
LOCATION 's3://${BUCKET}/warehouse/crypto_pulse.db/alerts'
TBLPROPERTIES ('table_type'='ICEBERG', 'format'='parquet')
