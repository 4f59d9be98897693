"""parse_trades / read_trades_file: Kinesis records and files -> unified trade columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs.common import schemas
from spark_jobs.common.quality import DataQualityChecker
from spark_jobs.common.runner import valid_trades
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.trades import PARSED_COLUMNS, parse_trades, read_trades_file

ARRIVAL = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _quiet_pandas_on_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    # assertDataFrameEqual imports pyspark.pandas, which warns (an error here) without it.
    monkeypatch.setenv("PYARROW_IGNORE_TIMEZONE", "1")


def trade(**overrides: Any) -> dict[str, Any]:
    """A valid unified trade event (the wire shape), fields overridden by keyword."""
    event = {
        "event_id": "binance:BTC-USDT:1001",
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "price": 50_000.5,
        "quantity": 0.25,
        "quote_volume": 12_500.125,
        "side": "buy",
        "timestamp": "2026-01-01T00:00:00.123Z",
        "ingestion_timestamp": "2026-01-01T00:00:00.130517Z",
    }
    event.update(overrides)
    return event


def payload(event: dict[str, Any] | str | None) -> bytes | None:
    if event is None:
        return None
    return (event if isinstance(event, str) else json.dumps(event)).encode()


def records(spark: SparkSession, *events: dict[str, Any] | str | None) -> DataFrame:
    """Kinesis records (schemas.RAW_KINESIS_RECORD) carrying the given payloads."""
    rows = [
        (payload(event), "trades", "BTC-USDT", f"{index:056d}", ARRIVAL)
        for index, event in enumerate(events)
    ]
    return spark.createDataFrame(rows, schemas.RAW_KINESIS_RECORD)


def micros(column: str) -> Any:
    return F.unix_micros(F.col(column)).alias(column)


def test_columns_and_types_are_the_unified_trade_plus_raw_and_json_ok(spark: SparkSession) -> None:
    parsed = parse_trades(records(spark, trade()))

    assert tuple(parsed.columns) == PARSED_COLUMNS
    types = {field.name: field.dataType for field in parsed.schema.fields}
    for field in schemas.UNIFIED_TRADE.fields:
        assert types[field.name] == field.dataType, field.name
    assert types["raw"].simpleString() == "string"
    assert types["json_ok"].simpleString() == "boolean"


def test_a_valid_record_keeps_every_value_and_the_raw_text(spark: SparkSession) -> None:
    event = trade()
    row = parse_trades(records(spark, event)).first()

    assert row is not None
    assert row["event_id"] == "binance:BTC-USDT:1001"
    assert (row["exchange"], row["symbol"], row["side"]) == ("binance", "BTC-USDT", "buy")
    assert (row["price"], row["quantity"], row["quote_volume"]) == (50_000.5, 0.25, 12_500.125)
    assert row["json_ok"] is True
    assert json.loads(row["raw"]) == event


@pytest.mark.parametrize(
    ("text", "epoch_us"),
    [
        ("2026-01-01T00:00:00.123Z", 1_767_225_600_123_000),  # Binance: ms
        ("2026-01-01T00:00:00.123456Z", 1_767_225_600_123_456),  # Coinbase: µs
        ("2026-01-01T00:00:00.000001Z", 1_767_225_600_000_001),
        ("2026-01-01T00:00:00Z", 1_767_225_600_000_000),
        ("2026-01-01T01:00:00.5+01:00", 1_767_225_600_500_000),
    ],
)
def test_times_are_parsed_to_the_exact_microsecond(
    spark: SparkSession, text: str, epoch_us: int
) -> None:
    parsed = parse_trades(records(spark, trade(timestamp=text, ingestion_timestamp=text)))

    got = parsed.select(micros("timestamp"), micros("ingestion_timestamp")).first()
    assert got is not None
    assert (got["timestamp"], got["ingestion_timestamp"]) == (epoch_us, epoch_us)


def test_a_time_that_is_not_iso_parses_to_null_without_failing(spark: SparkSession) -> None:
    row = parse_trades(records(spark, trade(timestamp="yesterday"))).first()

    assert row is not None
    assert row["timestamp"] is None
    assert row["json_ok"] is True


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", '[{"event_id": "x"}]', '"a string"', "42", "null", "", "{broken"],
)
def test_text_that_is_not_a_json_object_is_flagged_and_kept_raw(
    spark: SparkSession, text: str
) -> None:
    row = parse_trades(records(spark, text)).first()

    assert row is not None
    assert row["json_ok"] is False
    assert row["raw"] == text
    assert row["event_id"] is None


def test_a_record_without_data_is_flagged(spark: SparkSession) -> None:
    row = parse_trades(records(spark, None)).first()

    assert row is not None
    assert (row["json_ok"], row["raw"]) == (False, None)


def test_a_field_of_the_wrong_json_type_flags_the_record_but_keeps_what_it_read(
    spark: SparkSession,
) -> None:
    text = json.dumps(trade(price="50000.5"))  # a string where the contract says number
    row = parse_trades(records(spark, text)).first()

    assert row is not None
    assert row["json_ok"] is False
    assert row["price"] is None
    assert row["event_id"] == "binance:BTC-USDT:1001"  # the DLQ can still name the trade
    assert row["raw"] == text


def test_an_object_with_missing_fields_parses_with_nulls(spark: SparkSession) -> None:
    row = parse_trades(records(spark, {"event_id": "e-1", "extra": "ignored"})).first()

    assert row is not None
    assert row["json_ok"] is True
    assert row["event_id"] == "e-1"
    assert row["price"] is None
    assert row["timestamp"] is None


def test_json_lines_file_gives_the_same_rows_as_the_stream(
    spark: SparkSession, tmp_path: Path
) -> None:
    lines = [json.dumps(trade()), "not json", "", json.dumps(trade(event_id="binance:BTC-USDT:2"))]
    path = tmp_path / "trades.jsonl"
    path.write_text("\n".join(lines) + "\n")

    from_file = read_trades_file(spark, str(path))
    from_stream = parse_trades(records(spark, lines[0], lines[1], lines[3]))

    assert tuple(from_file.columns) == PARSED_COLUMNS
    assertDataFrameEqual(from_file, from_stream)


def test_parquet_with_iso_string_times(spark: SparkSession, tmp_path: Path) -> None:
    event = trade(timestamp="2026-01-01T00:00:00.123456Z")
    frame = spark.createDataFrame([event], schemas.UNIFIED_TRADE_JSON)
    frame.write.parquet(str(tmp_path / "trades"))

    parsed = read_trades_file(spark, str(tmp_path / "trades"))

    assert tuple(parsed.columns) == PARSED_COLUMNS
    row = parsed.select(micros("timestamp"), "event_id", "price", "json_ok", "raw").first()
    assert row is not None
    assert row["timestamp"] == 1_767_225_600_123_456
    assert (row["event_id"], row["price"], row["json_ok"]) == (
        "binance:BTC-USDT:1001",
        50_000.5,
        True,
    )
    assert json.loads(row["raw"])["event_id"] == "binance:BTC-USDT:1001"


def test_parquet_with_timestamp_columns_and_a_missing_column(
    spark: SparkSession, tmp_path: Path
) -> None:
    unified = parse_trades(records(spark, trade(timestamp="2026-01-01T00:00:00.000007Z")))
    unified.drop("raw", "json_ok", "side").write.parquet(str(tmp_path / "t.parquet"))

    parsed = read_trades_file(spark, str(tmp_path / "t.parquet"))

    row = parsed.select(micros("timestamp"), "side", "quantity").first()
    assert row is not None
    assert (row["timestamp"], row["side"], row["quantity"]) == (1_767_225_600_000_007, None, 0.25)
    types = {field.name: field.dataType for field in parsed.schema.fields}
    assert all(types[f.name] == f.dataType for f in schemas.UNIFIED_TRADE.fields)


def test_unknown_file_format_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv"):
        read_trades_file(spark, str(tmp_path), file_format="csv")


def test_every_record_gives_one_row_whatever_its_text(spark: SparkSession) -> None:
    texts: list[dict[str, Any] | str | None] = [trade(), None, "", "[1, 2]", "{oops", trade()]
    parsed = parse_trades(records(spark, *texts))

    assert parsed.count() == len(texts)
    assert [row["json_ok"] for row in parsed.collect()] == [True, False, False, False, False, True]


def test_filtering_on_checked_columns_parses_the_json_once(
    spark: SparkSession, job_settings: JobSettings
) -> None:
    """The valid rows of a batch (a filter on `failed_checks`, which reads a dozen parsed
    fields) read each record's JSON once: the optimizer does not copy the parse into the
    filter."""
    checker = DataQualityChecker(job_settings, "whale_detector")
    valid = valid_trades(checker.annotate(parse_trades(records(spark, trade(), "{oops"))))

    plan = valid._jdf.queryExecution().executedPlan().toString()
    assert plan.count("from_json(") == 1
    assert [row["event_id"] for row in valid.collect()] == [trade()["event_id"]]
