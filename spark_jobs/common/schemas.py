"""Every Spark schema of the pipeline, in one place (SPEC §6.0, §6.3).

Table schemas here are the single source of truth: the Iceberg tables are created from them and
`ddl/` is generated from them (a test checks both agree).
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _fields(*specs: tuple[str, object, bool]) -> StructType:
    return StructType([StructField(name, kind, nullable) for name, kind, nullable in specs])  # type: ignore[arg-type]


# The record as the `aws-kinesis` connector (and our Python source) emits it.
RAW_KINESIS_RECORD = _fields(
    ("data", BinaryType(), True),
    ("streamName", StringType(), True),
    ("partitionKey", StringType(), True),
    ("sequenceNumber", StringType(), True),
    ("approximateArrivalTimestamp", TimestampType(), True),
)

# The unified trade after parsing: times are timestamps (µs, UTC). Also the `raw_trades` table.
UNIFIED_TRADE = _fields(
    ("event_id", StringType(), True),
    ("exchange", StringType(), True),
    ("symbol", StringType(), True),
    ("price", DoubleType(), True),
    ("quantity", DoubleType(), True),
    ("quote_volume", DoubleType(), True),
    ("side", StringType(), True),
    ("timestamp", TimestampType(), True),
    ("ingestion_timestamp", TimestampType(), True),
)

# The unified trade event as it travels on the wire (SPEC §4): the same fields, times as ISO
# strings.
UNIFIED_TRADE_JSON = StructType(
    [
        StructField(f.name, StringType() if isinstance(f.dataType, TimestampType) else f.dataType)
        for f in UNIFIED_TRADE.fields
    ]
)

WINDOWED_AGGREGATE = _fields(
    ("window_start", TimestampType(), False),
    ("window_end", TimestampType(), False),
    ("symbol", StringType(), False),
    ("exchange", StringType(), False),
    ("trade_count", LongType(), False),
    ("total_volume", DoubleType(), False),
    ("total_quote_volume", DoubleType(), False),
    ("vwap", DoubleType(), False),
    ("min_price", DoubleType(), False),
    ("max_price", DoubleType(), False),
)

ANOMALY_ALERT = _fields(
    ("alert_id", StringType(), False),
    ("symbol", StringType(), False),
    ("exchange", StringType(), False),
    ("window_start", TimestampType(), False),
    ("window_end", TimestampType(), False),
    ("total_quote_volume", DoubleType(), False),
    ("baseline_mean", DoubleType(), False),
    ("baseline_std", DoubleType(), False),
    ("baseline_windows", IntegerType(), False),
    ("z_score", DoubleType(), False),
    ("threshold", DoubleType(), False),
    ("detected_at", TimestampType(), False),
)

WHALE_ALERT = StructType(
    list(UNIFIED_TRADE.fields)
    + list(
        _fields(
            ("alert_id", StringType(), False),
            ("base_asset", StringType(), False),
            ("quote_asset", StringType(), False),
            ("size_tier", StringType(), False),
            ("threshold", DoubleType(), False),
            ("detected_at", TimestampType(), False),
        ).fields
    )
)

SPREAD_RECORD = _fields(
    ("window_start", TimestampType(), False),
    ("window_end", TimestampType(), False),
    ("symbol", StringType(), False),
    ("exchange_count", IntegerType(), False),
    ("max_vwap", DoubleType(), False),
    ("min_vwap", DoubleType(), False),
    ("high_exchange", StringType(), False),
    ("low_exchange", StringType(), False),
    ("spread_pct", DoubleType(), False),
    ("is_alert", BooleanType(), False),
)

# Every alert of every job, shaped like the DynamoDB item.
ALERT = _fields(
    ("alert_id", StringType(), False),
    ("alert_type", StringType(), False),
    ("symbol", StringType(), False),
    ("exchange", StringType(), True),  # a spread spans exchanges: null there
    ("event_time", TimestampType(), False),
    ("detected_at", TimestampType(), False),
    ("metric", DoubleType(), False),
    ("threshold", DoubleType(), False),
    ("details", StringType(), False),
)

# A record that failed an ERROR check, as written to the DLQ.
DLQ_RECORD = _fields(
    ("raw", StringType(), True),
    ("event_id", StringType(), True),
    ("failed_checks", ArrayType(StringType(), containsNull=False), False),
    ("reason", StringType(), False),
    ("job", StringType(), False),
    ("batch_id", LongType(), False),
)

ALERT_TYPES = ("VOLUME_SPIKE", "WHALE_TRADE", "WIDE_SPREAD")
