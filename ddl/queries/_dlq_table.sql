CREATE EXTERNAL TABLE crypto_pulse.dlq (
  `raw` string,
  `event_id` string,
  `failed_checks` array<string>,
  `job` string,
  `batch_id` bigint
)
PARTITIONED BY (`reason` string, `dt` string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION '${RAW_ZONE}/dlq/'
TBLPROPERTIES (
  'projection.enabled'='true',
  'projection.reason.type'='enum',
  'projection.reason.values'='parse_json,completeness_event_id,completeness_symbol,completeness_price,completeness_quantity,completeness_timestamp,validity_price_positive,validity_quantity_positive,validity_symbol_allowed,validity_exchange_allowed,unknown',
  'projection.dt.type'='date',
  'projection.dt.format'='yyyy-MM-dd',
  'projection.dt.range'='2024-01-01,NOW',
  'projection.dt.interval'='1',
  'projection.dt.interval.unit'='DAYS',
  'storage.location.template'='${RAW_ZONE}/dlq/${reason}/dt=${dt}/'
)
