"""The batch jobs (SPEC §8), each `python -m spark_jobs.batch.<job>` and an EMR Serverless entry
point:

- `historical_loader`: Binance REST trades by id -> Parquet in the raw zone (no Spark).
- `reprocess_anomalies`: `raw_trades` as of a snapshot -> the current volume-anomaly detector ->
  `anomalies_reprocessed`, compared with `anomalies`.
- `schema_evolution_demo`: a column added to an Iceberg table without rewriting a data file.

Pure logic lives in `history` (id ranges, weight budget, file names), `comparison` and
`evolution`; the adapters are `binance_rest` (urllib) and `raw_zone` (pyarrow file systems).
"""
