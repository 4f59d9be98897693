"""The streaming jobs end to end on the local stack: trades put on the local Kinesis stream →
alerts in DynamoDB, rows in Iceberg, bad records in the DLQ; a restart on the checkpoint adds
nothing twice; the backtest of the same trades gives the same outputs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyspark.sql import SparkSession

from devstack.provision import ensure_alerts_table, ensure_stream
from spark_jobs.common.iceberg import load_catalog
from spark_jobs.common.registry import load_registry
from spark_jobs.common.runner import StreamingJob, run_backtest
from spark_jobs.common.settings import JobSettings
from tests.spark_jobs.builders import at, metric_sum

TABLES = ("raw_trades", "volume_aggregates", "anomalies", "whale_trades", "spreads", "alerts")


def event(
    seconds: float,
    trade_id: int,
    *,
    price: float = 100.0,
    quantity: float = 1.0,
    exchange: str = "binance",
    symbol: str = "BTC-USDT",
) -> dict[str, Any]:
    stamp = at(seconds).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        "event_id": f"{exchange}:{symbol}:{trade_id}",
        "exchange": exchange,
        "symbol": symbol,
        "price": price,
        "quantity": quantity,
        "quote_volume": price * quantity,
        "side": "buy",
        "timestamp": stamp,
        "ingestion_timestamp": stamp,
    }


def put(kinesis: Any, stream: str, records: list[dict[str, Any] | str]) -> None:
    entries = [
        {
            "Data": (r if isinstance(r, str) else json.dumps(r)).encode(),
            "PartitionKey": r["symbol"] if isinstance(r, dict) else "bad",
        }
        for r in records
    ]
    for start in range(0, len(entries), 500):
        response = kinesis.put_records(StreamName=stream, Records=entries[start : start + 500])
        assert response["FailedRecordCount"] == 0


@pytest.fixture
def stack(
    spark: SparkSession, job_settings: JobSettings, tmp_path: Path, aws_env: dict[str, str]
) -> tuple[JobSettings, Any, Any]:
    """A fresh stream, alerts table, warehouse, raw zone and checkpoint root for one test."""
    suffix = uuid.uuid4().hex[:8]
    settings = job_settings.model_copy(
        update={
            "stream": job_settings.stream.model_copy(update={"name": f"trades-{suffix}"}),
            "streaming": job_settings.streaming.model_copy(
                update={"checkpoint_root": str(tmp_path / "checkpoints"), "watermark_s": 10}
            ),
            "raw_zone": str(tmp_path / "raw"),
            "tables": job_settings.tables.model_copy(
                update={"warehouse": str(tmp_path / "warehouse")}
            ),
            "alerts": job_settings.alerts.model_copy(update={"dynamodb_table": f"alerts-{suffix}"}),
            "metrics": job_settings.metrics.model_copy(update={"cloudwatch": True}),
        }
    )
    kinesis = boto3.client("kinesis", region_name=aws_env["AWS_REGION"])
    dynamodb = boto3.client("dynamodb", region_name=aws_env["AWS_REGION"])
    ensure_stream(kinesis, settings.stream.name, shards=2)
    ensure_alerts_table(dynamodb, settings.alerts.dynamodb_table)
    return settings, kinesis, dynamodb


def run_until_drained(spark: SparkSession, settings: JobSettings, job: str) -> None:
    detector = None if job == "trade_archiver" else load_registry().by_job(job)
    StreamingJob(spark, settings, job, detector).drain()


def table_rows(settings: JobSettings, table: str) -> list[dict[str, Any]]:
    catalog = load_catalog(settings)
    rows: list[dict[str, Any]] = (
        catalog.load_table(f"crypto_pulse.{table}").scan().to_arrow().to_pylist()
    )
    return rows


def alert_ids(dynamodb: Any, table: str) -> list[str]:
    items = dynamodb.scan(TableName=table)["Items"]
    return sorted(item["alert_id"]["S"] for item in items)


def whale_trades() -> list[dict[str, Any] | str]:
    return [
        event(1, 1, price=60_000.0, quantity=1.0),
        event(2, 2, price=60_000.0, quantity=2.0),  # 120 000: whale
        event(3, 3, price=50_000.0, quantity=2.0),  # exactly 100 000: not a whale
        event(4, 4, price=70_000.0, quantity=5.0, exchange="coinbase"),  # 350 000: whale
        event(5, 5, price=60_000.0, quantity=9.0, symbol="DOGE-USDT"),  # unknown symbol: DLQ
        "{not json",  # DLQ
        {**event(6, 6), "price": -1.0},  # DLQ
    ]


@pytest.mark.slow
def test_whale_job_end_to_end_and_exactly_once_across_restarts(
    spark: SparkSession, stack: tuple[JobSettings, Any, Any]
) -> None:
    settings, kinesis, dynamodb = stack
    put(kinesis, settings.stream.name, whale_trades())
    run_until_drained(spark, settings, "whale_detector")
    expected = ["whale:binance:BTC-USDT:2", "whale:coinbase:BTC-USDT:4"]
    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == expected
    whales = table_rows(settings, "whale_trades")
    assert sorted(r["alert_id"] for r in whales) == expected
    assert {r["size_tier"] for r in whales} == {"large"}
    assert sorted(r["alert_id"] for r in table_rows(settings, "alerts")) == expected
    dlq = sorted(Path(settings.raw_zone, "dlq").glob("*/dt=*/*.jsonl"))
    reasons = sorted(p.parent.parent.name for p in dlq)
    assert reasons == ["parse_json", "validity_price_positive", "validity_symbol_allowed"]
    # A stateless detector runs inside the quality query: one consumer of the stream.
    assert [p.name for p in Path(settings.checkpoint("whale_detector")).iterdir()] == ["quality"]
    detected = {r["alert_id"]: r["detected_at"] for r in table_rows(settings, "alerts")}
    assert {r["alert_id"]: r["detected_at"] for r in whales} == detected
    # Detected at the micro-batch's time as Spark logged it (a replay of the batch gets it too).
    offsets = Path(settings.checkpoint("whale_detector"), "quality", "offsets", "0")
    logged = json.loads(offsets.read_text().splitlines()[1])["batchTimestampMs"]
    assert set(detected.values()) == {datetime.fromtimestamp(logged / 1000, UTC)}

    # Restart on the same checkpoints with nothing new: nothing written twice.
    run_until_drained(spark, settings, "whale_detector")
    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == expected
    assert len(table_rows(settings, "whale_trades")) == 2

    # New trades after the restart: only they are processed.
    put(kinesis, settings.stream.name, [event(10, 10, price=90_000.0, quantity=3.0)])
    run_until_drained(spark, settings, "whale_detector")
    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == sorted(
        [*expected, "whale:binance:BTC-USDT:10"]
    )
    assert len(table_rows(settings, "whale_trades")) == 3
    assert len(table_rows(settings, "alerts")) == 3


@pytest.mark.slow
def test_archiver_lands_every_valid_trade_once(
    spark: SparkSession, stack: tuple[JobSettings, Any, Any]
) -> None:
    settings, kinesis, _ = stack
    put(kinesis, settings.stream.name, whale_trades())
    run_until_drained(spark, settings, "trade_archiver")
    run_until_drained(spark, settings, "trade_archiver")
    rows = table_rows(settings, "raw_trades")
    assert sorted(r["event_id"] for r in rows) == [
        "binance:BTC-USDT:1",
        "binance:BTC-USDT:2",
        "binance:BTC-USDT:3",
        "coinbase:BTC-USDT:4",
    ]


@pytest.mark.slow
def test_stream_path_equals_backtest_path(
    spark: SparkSession, stack: tuple[JobSettings, Any, Any], tmp_path: Path
) -> None:
    settings, kinesis, dynamodb = stack
    trades: list[dict[str, Any] | str] = []
    trade_id = 100
    for second in range(0, 240, 3):  # 4 minutes on both exchanges, a dislocation in minute 2
        for exchange, skew in (("binance", 0.0), ("coinbase", 1.5 if 120 <= second < 150 else 0.1)):
            trade_id += 1
            trades.append(
                event(second, trade_id, price=100.0 + skew, quantity=1.0, exchange=exchange)
            )
    trades.append(event(600, 9999, price=100.0))  # moves the watermark past every window
    put(kinesis, settings.stream.name, trades)
    run_until_drained(spark, settings, "spread_calculator")
    streamed = sorted(
        (r["window_start"], r["spread_pct"], r["is_alert"]) for r in table_rows(settings, "spreads")
    )
    source = tmp_path / "trades.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in trades if isinstance(t, dict)))
    out = tmp_path / "backtest"
    counts = run_backtest(
        spark,
        settings,
        "spread_calculator",
        load_registry().by_job("spread_calculator"),
        str(source),
        out,
    )
    backtest = sorted(
        (r["window_start"], r["spread_pct"], r["is_alert"])
        for r in spark.read.json(str(out / "spreads")).collect()
    )
    assert counts["spreads"] == len(streamed) == 8
    assert [(w.strftime("%H:%M:%S"), round(p, 9), a) for w, p, a in streamed] == [
        (w[11:19], round(p, 9), a) for w, p, a in backtest
    ]
    assert [a for _, _, a in streamed].count(True) == 1  # the 30 s of the dislocation
    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == [
        "spread:BTC-USDT:2026-01-01T00:02:00Z"
    ]


@pytest.mark.slow
def test_a_stateful_job_routes_bad_records_to_the_dlq_and_counts_them_once(
    spark: SparkSession, stack: tuple[JobSettings, Any, Any], aws_env: dict[str, str]
) -> None:
    settings, kinesis, dynamodb = stack
    namespace = f"Test/Quality-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"quality_namespace": namespace})}
    )
    trades: list[dict[str, Any] | str] = [
        event(10, 1, price=100.0),
        event(11, 2, price=102.0, exchange="coinbase"),  # a 2 % spread in the first window
        event(12, 3, price=60_000.0, quantity=9.0, symbol="DOGE-USDT"),  # DLQ
        "{not json",  # DLQ
        {**event(13, 4), "price": -1.0},  # DLQ
        event(200, 5, price=100.0),  # moves the watermark past the first window
    ]
    put(kinesis, settings.stream.name, trades)
    run_until_drained(spark, settings, "spread_calculator")

    # The quality query (DLQ, metrics) and the detect query, each on its own checkpoint.
    checkpoint = Path(settings.checkpoint("spread_calculator"))
    assert sorted(p.name for p in checkpoint.iterdir()) == ["detect", "quality"]
    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == [
        "spread:BTC-USDT:2026-01-01T00:00:00Z"
    ]
    dlq = sorted(Path(settings.raw_zone, "dlq").glob("*/dt=*/*.jsonl"))
    assert sorted(p.parent.parent.name for p in dlq) == [
        "parse_json",
        "validity_price_positive",
        "validity_symbol_allowed",
    ]
    lines = [json.loads(line) for p in dlq for line in p.read_text().splitlines()]
    assert sorted(line["raw"] for line in lines if line["reason"] == "parse_json") == ["{not json"]
    assert {line["job"] for line in lines} == {"spread_calculator"}
    cloudwatch = boto3.client("cloudwatch", region_name=aws_env["AWS_REGION"])
    dims: list[Any] = [{"Name": "Job", "Value": "spread_calculator"}]

    def total(name: str) -> float | None:
        return metric_sum(cloudwatch, namespace, name, dims)

    assert (total("RecordsProcessed"), total("RecordsPassed"), total("RecordsFailed")) == (
        6.0,
        3.0,
        3.0,
    )

    # A restart with nothing new: no alert, DLQ line or count twice.
    run_until_drained(spark, settings, "spread_calculator")
    assert len(alert_ids(dynamodb, settings.alerts.dynamodb_table)) == 1
    again = sorted(Path(settings.raw_zone, "dlq").glob("*/dt=*/*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in again) == 3
    assert total("RecordsProcessed") == 6.0


@pytest.mark.slow
def test_volume_anomaly_job_keeps_series_state_across_restarts(
    spark: SparkSession, stack: tuple[JobSettings, Any, Any]
) -> None:
    settings, kinesis, dynamodb = stack

    def minute(m: int, volume: float) -> list[dict[str, Any] | str]:
        return [
            event(m * 60 + 20, 1000 + m * 10 + k, price=100.0, quantity=volume / 200.0)
            for k in range(2)
        ]

    first: list[dict[str, Any] | str] = []
    for m in range(8):
        first += minute(m, 1000.0 + 100.0 * (m % 2))
    put(kinesis, settings.stream.name, first)
    run_until_drained(spark, settings, "volume_anomaly")
    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == []

    # After the restart the baseline still holds minutes 0-7: minute 12 is scored against 12.
    second: list[dict[str, Any] | str] = []
    for m in range(8, 12):
        second += minute(m, 1000.0 + 100.0 * (m % 2))
    second += [*minute(12, 4000.0), event(15 * 60, 9999, price=100.0, quantity=1.0)]
    put(kinesis, settings.stream.name, second)
    run_until_drained(spark, settings, "volume_anomaly")

    assert alert_ids(dynamodb, settings.alerts.dynamodb_table) == [
        "volume_anomaly:binance:BTC-USDT:2026-01-01T00:12:00Z"
    ]
    (anomaly,) = table_rows(settings, "anomalies")
    assert anomaly["baseline_windows"] == 12
    assert anomaly["z_score"] > 2.5
    aggregates = table_rows(settings, "volume_aggregates")
    assert sorted(r["window_start"].minute for r in aggregates) == list(range(13))
    assert {r["trade_count"] for r in aggregates} == {2}
