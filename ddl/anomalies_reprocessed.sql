CREATE TABLE crypto_pulse.anomalies_reprocessed (
  `alert_id` string,
  `symbol` string,
  `exchange` string,
  `window_start` timestamp,
  `window_end` timestamp,
  `total_quote_volume` double,
  `baseline_mean` double,
  `baseline_std` double,
  `baseline_windows` int,
  `z_score` double,
  `threshold` double,
  `detected_at` timestamp,
  `source_snapshot_id` bigint
)
PARTITIONED BY (day(`window_start`), `symbol`)
LOCATION 's3://${BUCKET}/warehouse/crypto_pulse.db/anomalies_reprocessed'
TBLPROPERTIES ('table_type'='ICEBERG', 'format'='parquet')
