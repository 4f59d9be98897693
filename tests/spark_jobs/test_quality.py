"""DataQualityChecker: each check on its own rows, WARN rows, metrics, streaming annotate."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.common import quality, schemas
from spark_jobs.common.quality import (
    Check,
    DataQualityChecker,
    QualityMetrics,
    default_checks,
)
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.trades import TRADE_COLUMNS, parse_trades

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
JOB = "whale_detector"
ERROR_CHECKS = [
    "parse_json",
    "completeness_event_id",
    "completeness_symbol",
    "completeness_price",
    "completeness_quantity",
    "completeness_timestamp",
    "validity_price_positive",
    "validity_quantity_positive",
    "validity_symbol_allowed",
    "validity_exchange_allowed",
]
WARN_CHECKS = ["timeliness_recent", "consistency_quote_volume"]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_ids = iter(range(1, 1_000_000))


def trade(**overrides: Any) -> dict[str, Any]:
    """A valid, recent, consistent trade (10 s before NOW); a fresh event_id each time."""
    price, quantity = overrides.get("price", 100.0), overrides.get("quantity", 2.0)
    event = {
        "event_id": f"binance:BTC-USDT:{next(_ids)}",
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "price": price,
        "quantity": quantity,
        "quote_volume": 200.0,
        "side": "sell",
        "timestamp": iso(NOW - timedelta(seconds=10)),
        "ingestion_timestamp": iso(NOW - timedelta(seconds=9)),
    }
    event.update(overrides)
    return {name: value for name, value in event.items() if value is not _MISSING}


_MISSING = object()  # trade(field=_MISSING) leaves the field out of the JSON


def batch(spark: SparkSession, *events: dict[str, Any] | str) -> DataFrame:
    """Parsed trades, as the quality stage gets them from the Kinesis source."""
    rows = [
        ((e if isinstance(e, str) else json.dumps(e)).encode(), "s", "k", str(i), NOW)
        for i, e in enumerate(events)
    ]
    return parse_trades(spark.createDataFrame(rows, schemas.RAW_KINESIS_RECORD))


@pytest.fixture
def checker(job_settings: JobSettings) -> DataQualityChecker:
    return DataQualityChecker(job_settings, JOB)


def test_default_checks_are_the_specs_in_order(job_settings: JobSettings) -> None:
    checks = default_checks(job_settings)

    assert [c.name for c in checks] == ERROR_CHECKS + WARN_CHECKS
    assert [c.severity for c in checks] == ["ERROR"] * 10 + ["WARN"] * 2
    assert [c.name for c in checks if c.gate] == ["parse_json"]


# One failing row per check: (field overrides or raw text, exact failed_checks).
FAILURES: list[tuple[str, dict[str, Any] | str, list[str]]] = [
    ("not json", "{not json", ["parse_json"]),
    ("wrong json type", {"price": "100.0"}, ["parse_json"]),
    ("json array", "[1, 2, 3]", ["parse_json"]),
    ("null event_id", {"event_id": None}, ["completeness_event_id"]),
    ("blank event_id", {"event_id": "  "}, ["completeness_event_id"]),
    ("no symbol", {"symbol": _MISSING}, ["completeness_symbol", "validity_symbol_allowed"]),
    ("null price", {"price": None}, ["completeness_price", "validity_price_positive"]),
    (
        "null quantity",
        {"quantity": None},
        ["completeness_quantity", "validity_quantity_positive"],
    ),
    ("no timestamp", {"timestamp": _MISSING}, ["completeness_timestamp"]),
    ("timestamp not iso", {"timestamp": "yesterday"}, ["completeness_timestamp"]),
    ("zero price", {"price": 0.0}, ["validity_price_positive"]),
    ("negative price", {"price": -5.0}, ["validity_price_positive"]),
    ("NaN price", {"price": float("nan")}, ["validity_price_positive"]),
    ("infinite price", {"price": float("inf")}, ["validity_price_positive"]),
    ("negative quantity", {"quantity": -0.5}, ["validity_quantity_positive"]),
    ("unknown symbol", {"symbol": "DOGE-USDT"}, ["validity_symbol_allowed"]),
    ("unknown exchange", {"exchange": "kraken"}, ["validity_exchange_allowed"]),
    ("null exchange", {"exchange": None}, ["validity_exchange_allowed"]),
    (
        "several",
        {"price": -1.0, "symbol": "DOGE-USDT", "exchange": "kraken"},
        ["validity_price_positive", "validity_symbol_allowed", "validity_exchange_allowed"],
    ),
]


def bad_event(bad: dict[str, Any] | str) -> dict[str, Any] | str:
    return bad if isinstance(bad, str) else trade(**bad)


def raw_text(event: dict[str, Any] | str) -> str:
    return event if isinstance(event, str) else json.dumps(event)


@pytest.fixture(scope="module")
def failures_batch(
    spark: SparkSession, job_settings: JobSettings
) -> tuple[list[dict[str, Any] | str], list[Any], list[Any], QualityMetrics, dict[str, Any]]:
    """One good row and one row per FAILURES case, validated and annotated once."""
    good = trade()
    bad = [bad_event(case) for _, case, _ in FAILURES]
    frame = batch(spark, good, *bad)
    checker = DataQualityChecker(job_settings, JOB)
    valid, invalid, metrics = checker.validate(frame, batch_id=7, now=NOW)
    annotated = {r["raw"]: r for r in checker.annotate(frame, now=NOW).collect()}
    valid_rows, invalid_rows = valid.collect(), invalid.collect()
    checker.release()
    return [good, *bad], valid_rows, invalid_rows, metrics, annotated


@pytest.mark.parametrize("case", range(len(FAILURES)), ids=[f[0] for f in FAILURES])
def test_each_error_check_on_its_own_row(
    failures_batch: tuple[list[dict[str, Any] | str], list[Any], list[Any], QualityMetrics, Any],
    case: int,
) -> None:
    events, _, invalid, _, annotated = failures_batch
    event, expected = events[case + 1], FAILURES[case][2]
    raw = raw_text(event)

    rows = [row for row in invalid if row["raw"] == raw]
    assert len(rows) == 1
    row = rows[0]
    assert row["failed_checks"] == expected
    assert row["reason"] == expected[0]  # the first failed check in configured order
    assert (row["job"], row["batch_id"]) == (JOB, 7)
    if isinstance(event, dict) and event.get("event_id"):
        assert row["event_id"] == event["event_id"]
    assert annotated[raw]["failed_checks"] == expected
    assert annotated[raw]["warnings"] == []  # WARN checks are for rows that are kept


def test_only_the_good_row_of_the_failures_batch_is_valid(
    failures_batch: tuple[list[dict[str, Any] | str], list[Any], list[Any], QualityMetrics, Any],
) -> None:
    events, valid, invalid, metrics, _ = failures_batch
    good = events[0]
    assert isinstance(good, dict)

    assert [row["event_id"] for row in valid] == [good["event_id"]]
    assert len(invalid) == len(FAILURES)
    n = len(FAILURES) + 1
    assert (metrics.records_processed, metrics.records_passed, metrics.records_failed) == (
        n,
        1,
        n - 1,
    )
    expected_counts = dict.fromkeys(ERROR_CHECKS + WARN_CHECKS, 0)
    for _, _, failed in FAILURES:
        for name in failed:
            expected_counts[name] += 1
    assert metrics.failures_by_check == expected_counts


def test_malformed_json_row_goes_to_the_dlq_with_its_raw_text(
    spark: SparkSession, checker: DataQualityChecker
) -> None:
    text = '{"event_id": "binance:BTC-USDT:9", "price": 1.0, "quantity": '  # cut off
    _, invalid, metrics = checker.validate(batch(spark, text), batch_id=3, now=NOW)

    assert [r.asDict() for r in invalid.collect()] == [
        {
            "raw": text,
            "event_id": None,
            "failed_checks": ["parse_json"],
            "reason": "parse_json",
            "job": JOB,
            "batch_id": 3,
        }
    ]
    assert metrics.failures_by_check["parse_json"] == 1
    assert [(f.name, f.dataType) for f in invalid.schema.fields] == [
        (f.name, f.dataType) for f in schemas.DLQ_RECORD.fields
    ]


WARNS: list[tuple[dict[str, Any], list[str]]] = [
    ({"timestamp": iso(NOW - timedelta(seconds=301))}, ["timeliness_recent"]),
    ({"timestamp": iso(NOW - timedelta(seconds=300))}, []),  # exactly max_age_s: not late
    ({"timestamp": iso(NOW + timedelta(seconds=5))}, []),  # exchange clock ahead
    ({"quote_volume": 202.0}, ["consistency_quote_volume"]),  # 1 % off
    # |1000 - 1001| / 1000 = 0.001: the tolerance itself is a warning (>=).
    ({"price": 1001.0, "quantity": 1.0, "quote_volume": 1000.0}, ["consistency_quote_volume"]),
    ({"price": 1000.9, "quantity": 1.0, "quote_volume": 1000.0}, []),
    ({"quote_volume": 0.0}, ["consistency_quote_volume"]),
    ({"quote_volume": None}, ["consistency_quote_volume"]),
    (
        {"timestamp": iso(NOW - timedelta(hours=1)), "quote_volume": 1.0},
        ["timeliness_recent", "consistency_quote_volume"],
    ),
]


@pytest.fixture(scope="module")
def warn_batch(spark: SparkSession, job_settings: JobSettings) -> tuple[list[dict[str, Any]], Any]:
    events = [trade(**overrides) for overrides, _ in WARNS]
    checker = DataQualityChecker(job_settings, JOB)
    frame = batch(spark, *events)
    valid, invalid, metrics = checker.validate(frame, now=NOW)
    annotated = {r["event_id"]: r for r in checker.annotate(frame, now=NOW).collect()}
    result = (valid.collect(), invalid.count(), metrics, annotated)
    checker.release()
    return events, result


@pytest.mark.parametrize("case", range(len(WARNS)), ids=[str(w[1]) for w in WARNS])
def test_warn_rows_are_kept_with_their_warnings(
    warn_batch: tuple[list[dict[str, Any]], Any], case: int
) -> None:
    events, (valid, _, _, annotated) = warn_batch
    event, warnings = events[case], WARNS[case][1]

    assert event["event_id"] in {row["event_id"] for row in valid}
    row = annotated[event["event_id"]]
    assert (row["failed_checks"], row["warnings"]) == ([], warnings)


def test_warn_rows_are_counted(warn_batch: tuple[list[dict[str, Any]], Any]) -> None:
    _, (valid, invalid_count, metrics, _) = warn_batch

    assert (len(valid), invalid_count) == (len(WARNS), 0)
    assert metrics.records_passed == len(WARNS)
    late = sum("timeliness_recent" in warnings for _, warnings in WARNS)
    inconsistent = sum("consistency_quote_volume" in warnings for _, warnings in WARNS)
    assert (late, inconsistent) == (2, 5)
    assert metrics.records_late == late
    assert metrics.failures_by_check["timeliness_recent"] == late
    assert metrics.failures_by_check["consistency_quote_volume"] == inconsistent


def test_metrics_of_a_mixed_batch(spark: SparkSession, checker: DataQualityChecker) -> None:
    frame = batch(
        spark,
        trade(),
        trade(),
        trade(timestamp=iso(NOW - timedelta(minutes=10))),  # late, kept
        trade(quote_volume=1.0),  # inconsistent, kept
        trade(price=0.0),
        "garbage",
        trade(symbol="DOGE-USDT", exchange="kraken"),
    )

    valid, invalid, metrics = checker.validate(frame, now=NOW)

    assert metrics == QualityMetrics(
        records_processed=7,
        records_passed=4,
        records_failed=3,
        records_late=1,
        quality_score_pct=pytest.approx(400 / 7),  # type: ignore[arg-type]
        failures_by_check={
            **dict.fromkeys(ERROR_CHECKS + WARN_CHECKS, 0),
            "parse_json": 1,
            "validity_price_positive": 1,
            "validity_symbol_allowed": 1,
            "validity_exchange_allowed": 1,
            "timeliness_recent": 1,
            "consistency_quote_volume": 1,
        },
    )
    assert valid.count() == 4
    assert sorted(r["reason"] for r in invalid.collect()) == [
        "parse_json",
        "validity_price_positive",
        "validity_symbol_allowed",
    ]
    assert valid.columns == [f.name for f in schemas.UNIFIED_TRADE.fields]


@pytest.mark.parametrize(
    "events",
    [
        [],
        ["x"],
        [{"price": 0.0}, {"quantity": 0.0}],
        [{}, {}, {}],
        [{}, "y", {"timestamp": "2020-01-01T00:00:00Z"}, {"symbol": None, "price": None}],
    ],
)
def test_processed_is_passed_plus_failed_for_every_batch(
    spark: SparkSession, checker: DataQualityChecker, events: list[dict[str, Any] | str]
) -> None:
    frame = batch(spark, *[e if isinstance(e, str) else trade(**e) for e in events])

    valid, invalid, metrics = checker.validate(frame, now=NOW)

    assert metrics.records_processed == len(events)
    assert metrics.records_processed == metrics.records_passed + metrics.records_failed
    assert (valid.count(), invalid.count()) == (metrics.records_passed, metrics.records_failed)


def test_an_empty_batch_scores_100(spark: SparkSession, checker: DataQualityChecker) -> None:
    _, _, metrics = checker.validate(batch(spark), now=NOW)

    assert (metrics.records_processed, metrics.quality_score_pct) == (0, 100.0)


def test_metrics_refuse_to_break_the_invariant() -> None:
    with pytest.raises(ValueError, match="processed = passed \\+ failed"):
        QualityMetrics(3, 1, 1, 0, 33.3, {})


def test_checks_are_configuration_and_null_safe(
    spark: SparkSession, job_settings: JobSettings
) -> None:
    checks = [
        Check("parse_json", "ERROR", "json_ok", gate=True),
        Check("price_above_100", "ERROR", "price > 100"),  # null price -> unknown -> failed
        Check("side_known", "WARN", lambda: F.col("side").isin("buy", "sell")),
    ]
    checker = DataQualityChecker(job_settings, JOB, checks)
    frame = batch(
        spark,
        trade(price=150.0),
        trade(price=50.0),
        trade(price=None),
        trade(price=150.0, side="sideways"),
    )

    rows = checker.annotate(frame, now=NOW).select("price", "failed_checks", "warnings").collect()

    assert [(r["failed_checks"], r["warnings"]) for r in rows] == [
        ([], []),
        (["price_above_100"], []),
        (["price_above_100"], []),
        ([], ["side_known"]),
    ]


def test_the_checks_run_as_generated_code(spark: SparkSession, checker: DataQualityChecker) -> None:
    """Every record goes through the checks: the projection that makes `failed_checks` and
    `warnings` must be compiled (inside a whole-stage codegen node, `*(n)` in the plan), not
    evaluated expression by expression (which a lambda function such as `array_compact` forces
    on the whole projection)."""
    annotated = checker.annotate(batch(spark, trade(), "{"), now=NOW)
    plan = annotated._jdf.queryExecution().executedPlan().toString()

    producing = [line for line in plan.splitlines() if " AS failed_checks#" in line]
    assert len(producing) == 1, plan
    assert producing[0].lstrip("+- :").startswith("*("), producing[0][:200]
    assert [r["failed_checks"] for r in annotated.collect()] == [[], ["parse_json"]]


def test_a_failed_warn_gate_stops_the_checks_after_it(
    spark: SparkSession, job_settings: JobSettings
) -> None:
    checks = [
        Check("parse_json", "ERROR", "json_ok", gate=True),
        Check("price_known", "WARN", "price IS NOT NULL", gate=True),
        Check("price_above_100", "ERROR", "price > 100"),
        Check("side_known", "WARN", lambda: F.col("side").isin("buy", "sell")),
    ]
    checker = DataQualityChecker(job_settings, JOB, checks)
    frame = batch(
        spark,
        trade(price=150.0),
        trade(price=None, side="sideways"),  # the WARN gate fails: nothing after it is checked
        trade(price=50.0, side="sideways"),  # an ERROR: no warnings
        trade(price=150.0, side="sideways"),
    )

    rows = checker.annotate(frame, now=NOW).select("failed_checks", "warnings").collect()

    assert [(r["failed_checks"], r["warnings"]) for r in rows] == [
        ([], []),
        ([], ["price_known"]),
        (["price_above_100"], []),
        ([], ["side_known"]),
    ]


def test_check_names_must_be_unique(job_settings: JobSettings) -> None:
    with pytest.raises(ValueError, match="named twice"):
        DataQualityChecker(job_settings, JOB, [Check("a", "ERROR", "true")] * 2)


def test_allowed_symbols_and_exchanges_come_from_settings(
    spark: SparkSession, job_settings: JobSettings
) -> None:
    narrow = job_settings.model_copy(
        update={"symbols": {"ETH-USDT": {"binance": "ETHUSDT"}}, "exchanges": ("coinbase",)}
    )
    checker = DataQualityChecker(narrow, JOB)

    row = checker.annotate(batch(spark, trade()), now=NOW).first()

    assert row is not None
    assert row["failed_checks"] == ["validity_symbol_allowed", "validity_exchange_allowed"]


def test_validate_caches_the_batch_until_released(
    spark: SparkSession, checker: DataQualityChecker
) -> None:
    frame = batch(spark, trade(), "bad")
    valid, _, _ = checker.validate(frame, now=NOW)
    first = checker._cached
    assert first is not None
    assert first.is_cached

    checker.validate(frame, now=NOW)
    assert not first.is_cached  # the previous batch is dropped by the next one
    checker.release()
    assert checker._cached is None
    assert valid.count() == 1  # still usable: recomputed with the same pinned time


def test_validate_keeps_the_asked_columns_on_valid_rows(
    spark: SparkSession, checker: DataQualityChecker
) -> None:
    frame = batch(spark, trade(), "bad").withColumn("extra", F.lit(7))
    valid, invalid, _ = checker.validate(frame, now=NOW, keep=("extra",))
    assert valid.columns == [*TRADE_COLUMNS, "extra"]
    assert [row["extra"] for row in valid.collect()] == [7]
    assert "extra" not in invalid.columns
    checker.release()


def test_annotate_works_on_a_stream(
    spark: SparkSession, checker: DataQualityChecker, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    recent = iso(datetime.now(UTC))  # the stream's processing time is the wall clock
    good = trade(timestamp=recent)
    late = trade(timestamp="2020-01-01T00:00:00Z")
    bad_price = trade(price=-1.0, timestamp=recent)
    lines = [json.dumps(good), json.dumps(late), json.dumps(bad_price), "{oops"]
    (source / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    stream = spark.readStream.format("text").load(str(source))
    kinesis_like = stream.select(
        F.col("value").cast("binary").alias("data"),
        F.lit("s").alias("streamName"),
        F.lit("k").alias("partitionKey"),
        F.lit("0").alias("sequenceNumber"),
        F.current_timestamp().alias("approximateArrivalTimestamp"),
    )
    annotated = checker.annotate(parse_trades(kinesis_like))  # processing time: current_timestamp
    assert annotated.isStreaming
    collected: list[dict[str, Any]] = []

    def collect(frame: DataFrame, batch_id: int) -> None:
        collected.extend(
            r.asDict() for r in frame.select("raw", "failed_checks", "warnings").collect()
        )

    query = (
        annotated.writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    try:
        query.processAllAvailable()
    finally:
        query.stop()

    by_raw = {row["raw"]: (row["failed_checks"], row["warnings"]) for row in collected}
    assert by_raw == {
        lines[0]: ([], []),
        lines[1]: ([], ["timeliness_recent"]),
        lines[2]: (["validity_price_positive"], []),
        lines[3]: (["parse_json"], []),
    }


def mixed_frame(spark: SparkSession) -> DataFrame:
    return batch(spark, trade(), trade(quote_volume=1.0), trade(price=0.0), "garbage")


def test_split_observes_the_metrics_of_a_batch_an_action_read(
    spark: SparkSession, checker: DataQualityChecker
) -> None:
    """The whale job reads each micro-batch once: the detection's action computes the metrics on
    the way, and measuring them then runs no Spark job."""
    _, _, expected = checker.validate(mixed_frame(spark), now=NOW)
    checker.release()
    valid, _, measure = checker.split(checker.annotate(mixed_frame(spark), now=NOW), batch_id=4)
    assert valid.toArrow().num_rows == 2  # the action that reads the whole batch
    group = f"measure-{uuid.uuid4().hex}"
    spark.sparkContext.setJobGroup(group, "measuring an observed batch")
    try:
        metrics = measure(scanned=True)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(group) == []
    assert metrics == expected
    assert (metrics.records_processed, metrics.records_failed, metrics.records_passed) == (4, 2, 2)


def test_measuring_an_unread_batch_aggregates_after_a_bounded_wait(
    spark: SparkSession,
    checker: DataQualityChecker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A caller that wrongly says the batch was read gets the right metrics anyway, late."""
    monkeypatch.setattr(quality, "OBSERVATION_WAIT_S", 0.05)
    _, _, expected = checker.validate(mixed_frame(spark), now=NOW)
    checker.release()
    _, _, measure = checker.split(checker.annotate(mixed_frame(spark), now=NOW))

    assert measure(scanned=True) == expected
    assert "were not observed within 0.05 s: aggregating" in caplog.text
    assert measure() == expected  # the default: one aggregation, no wait
