"""MOD-001: hand-computed expectations on static DataFrames, and the streaming path (state via
transformWithStateInPandas) giving the same records."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from devstack.aws import REPO_ROOT
from spark_jobs.common import schemas
from spark_jobs.detectors.volume_anomaly import (
    SERIES_STATE,
    SeriesState,
    StoredSeries,
    VolumeAnomalyDetector,
    WindowTotals,
    window_totals,
)
from tests.spark_jobs.builders import at, naive, trade, trades_df


def detector(**params: Any) -> VolumeAnomalyDetector:
    volume = VolumeAnomalyDetector()
    volume.configure(params)
    return volume


def minute_trades(volumes: dict[int, float], exchange: str = "binance") -> list[dict[str, Any]]:
    """One trade per listed minute with that quote volume (price 100), in the minute's middle."""
    return [
        trade(minute * 60 + 30, price=100.0, quantity=volume / 100.0, exchange=exchange)
        for minute, volume in volumes.items()
    ]


def records(
    spark: SparkSession, volume: VolumeAnomalyDetector, rows: list[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    out = volume.process(trades_df(spark, rows)).collect()
    minute0 = naive(at(0))
    return {int((r["window_start"] - minute0).total_seconds() // 60): r.asDict() for r in out}


def test_a_spike_after_a_quiet_hour(spark: SparkSession) -> None:
    quiet = {m: 1000.0 + 100.0 * (m % 2) for m in range(60)}  # 1000, 1100, 1000, …
    got = records(spark, detector(), minute_trades({**quiet, 60: 5000.0}))
    baseline = list(quiet.values())
    mean, std = statistics.mean(baseline), statistics.stdev(baseline)
    spike = got[60]
    assert spike["baseline_windows"] == 60
    assert spike["baseline_mean"] == pytest.approx(mean)
    assert spike["baseline_std"] == pytest.approx(std)
    assert spike["z_score"] == pytest.approx((5000.0 - mean) / std)
    assert spike["is_alert"] is True
    assert [m for m, r in got.items() if r["is_alert"]] == [60]
    assert spike["total_quote_volume"] == pytest.approx(5000.0)
    assert (spike["trade_count"], spike["vwap"]) == (1, 100.0)


def test_silent_minutes_count_as_zero_from_the_first_window(spark: SparkSession) -> None:
    # Trades in even minutes only; odd minutes are silent (zero) and belong to the baseline.
    volumes = dict.fromkeys(range(0, 20, 2), 100.0)
    got = records(spark, detector(), minute_trades({**volumes, 20: 400.0}))
    baseline = [100.0 if m % 2 == 0 else 0.0 for m in range(20)]
    last = got[20]
    assert last["baseline_windows"] == 20
    assert last["baseline_mean"] == pytest.approx(50.0)
    assert last["baseline_std"] == pytest.approx(statistics.stdev(baseline))
    assert last["z_score"] == pytest.approx((400.0 - 50.0) / statistics.stdev(baseline))
    assert set(got) == set(range(0, 21, 2))  # silent windows have no aggregate row


def test_fewer_than_ten_baseline_windows_never_alert(spark: SparkSession) -> None:
    got = records(spark, detector(), minute_trades({**{m: 10.0 + m for m in range(9)}, 9: 1e9}))
    assert got[9]["baseline_windows"] == 9
    assert got[9]["z_score"] is None
    assert not any(r["is_alert"] for r in got.values())


def test_constant_volume_has_no_z_score(spark: SparkSession) -> None:
    got = records(spark, detector(), minute_trades({**dict.fromkeys(range(30), 500.0), 30: 9e9}))
    assert got[30]["baseline_std"] == 0.0
    assert got[30]["z_score"] is None
    assert got[30]["is_alert"] is False


def test_the_threshold_is_strict(spark: SparkSession) -> None:
    volumes = {**{m: 1000.0 + 100.0 * (m % 3) for m in range(12)}, 12: 1500.0}
    z = records(spark, detector(), minute_trades(volumes))[12]["z_score"]
    at_boundary = records(spark, detector(z_threshold=z), minute_trades(volumes))[12]
    assert at_boundary["is_alert"] is False
    below = records(spark, detector(z_threshold=z - 1e-9), minute_trades(volumes))[12]
    assert below["is_alert"] is True


def test_only_the_preceding_60_windows_are_the_baseline() -> None:
    state = SeriesState()
    for minute in range(70):
        score = state.close(minute * 60_000, 60_000, float(minute), 60, 10, 2.5)
    assert score.baseline_windows == 60
    assert score.baseline_mean == pytest.approx(statistics.mean(range(9, 69)))
    assert len(state.history) == 60


def test_window_totals_are_the_trades_sums_per_window() -> None:
    # Three windows, trades out of order.
    trades = [(61_000, 10.0, 2.0), (5_000, 11.0, 1.0), (62_500, 9.0, 4.0), (30_000, 12.0, 0.5)]
    trades += [(125_000, 100.0, 0.25)]
    rows = pd.DataFrame(
        {
            "timestamp": pd.to_datetime([ms for ms, _, _ in trades], unit="ms", utc=True),
            "price": [price for _, price, _ in trades],
            "quantity": [quantity for _, _, quantity in trades],
            "quote_volume": [price * quantity for _, price, quantity in trades],
        }
    )
    got = window_totals(rows, 60_000)
    assert {start: totals.as_tuple() for start, totals in got.items()} == {
        0: pytest.approx((2, 1.5, 17.0, 17.0, 11.0, 12.0)),
        60_000: pytest.approx((2, 6.0, 56.0, 56.0, 9.0, 10.0)),
        120_000: pytest.approx((1, 0.25, 25.0, 25.0, 100.0, 100.0)),
    }
    assert window_totals(rows.iloc[:0], 60_000) == {}


def test_a_series_state_survives_its_round_trip_through_the_state_schema() -> None:
    stored = StoredSeries(SeriesState([1.0, 0.0, 2.5], 180_000), {})
    stored.open[240_000] = WindowTotals(3, 1.5, 150.0, 150.0, 99.0, 101.0)
    stored.open[180_000] = WindowTotals(1, 0.5, 50.0, 50.0, 100.0, 100.0)
    dumped = stored.dump()
    # What the state server is sent: the schema's internal form of the value.
    internal = SERIES_STATE.toInternal(dumped)
    assert StoredSeries.load(tuple(internal)) == stored
    assert [window[0] for window in dumped[2]] == [180_000, 240_000]  # in time order
    assert StoredSeries.load(None) == StoredSeries()


def test_the_processor_loads_without_pandas() -> None:
    """At every query start Spark unpickles the processor in a Python process of the driver to
    learn its state's schema; that needs no pandas, which would cost it ~0.45 s to import."""
    script = (
        "import pickle, sys; from spark_jobs.detectors.volume_anomaly import "
        "VolumeAnomalyDetector, VolumeSeriesProcessor; "
        "pickle.loads(pickle.dumps(VolumeSeriesProcessor(dict(VolumeAnomalyDetector.defaults)))); "
        "print('pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert done.stdout.strip() == "False"


def test_series_are_scored_separately(spark: SparkSession) -> None:
    rows = minute_trades({m: 1000.0 + (m % 2) for m in range(15)}) + minute_trades(
        dict.fromkeys(range(15), 5.0), exchange="coinbase"
    )
    out = detector().process(trades_df(spark, rows)).collect()
    assert {(r["exchange"], r["symbol"]) for r in out} == {
        ("binance", "BTC-USDT"),
        ("coinbase", "BTC-USDT"),
    }
    assert len(out) == 30


def write_json_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    def text(value: Any) -> Any:
        return value.isoformat() if hasattr(value, "isoformat") else value

    staging = path.with_suffix(".tmp")
    staging.write_text("".join(json.dumps({k: text(v) for k, v in r.items()}) + "\n" for r in rows))
    staging.rename(path)  # the file source must never see a half-written file


def stream_records(
    spark: SparkSession, tmp_path: Path, batches: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Push batches of trades through the streaming path (file source, 1 s watermark); returns
    the records and how many rows the watermark dropped as late."""
    source = tmp_path / "in"
    source.mkdir()
    collected: list[dict[str, Any]] = []

    def collect(batch: DataFrame, _: int) -> None:
        collected.extend(r.asDict() for r in batch.collect())

    stream = (
        spark.readStream.schema(schemas.UNIFIED_TRADE)
        .option("maxFilesPerTrigger", 1)
        .json(str(source))
        .withWatermark("timestamp", "1 seconds")
    )
    query = (
        detector()
        .process(stream)
        .writeStream.outputMode("append")
        .foreachBatch(collect)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    dropped = 0
    try:
        for number, rows in enumerate(batches):
            write_json_lines(source / f"{number:03d}.json", rows)
            query.processAllAvailable()
        query.processAllAvailable()
        dropped = sum(
            operator.numRowsDroppedByWatermark
            for progress in query.recentProgress
            for operator in progress.stateOperators
        )
    finally:
        query.stop()
    return collected, dropped


@pytest.mark.slow
def test_streaming_path_equals_static_path(spark: SparkSession, tmp_path: Path) -> None:
    volumes = {**{m: 1000.0 + 100.0 * (m % 2) for m in range(14)}, 14: 9000.0, 15: 1000.0}
    rows = minute_trades(volumes) + minute_trades(dict.fromkeys(range(0, 16, 3), 50.0), "coinbase")
    # Two micro-batches in time order, then a late trade for minute 2 and a far-future trade
    # that pushes the watermark past every window.
    rows.sort(key=lambda r: r["timestamp"])
    batches = [
        rows[:10],
        rows[10:],
        [trade(2 * 60 + 5, price=100.0, quantity=99.0)],
        [trade(40 * 60, price=1.0, quantity=1.0, exchange="kraken")],
    ]
    streamed, dropped = stream_records(spark, tmp_path, batches)
    assert dropped == 1  # the late minute-2 trade: counted, and no window changed
    static = detector().process(trades_df(spark, rows)).collect()
    key = lambda r: (r["exchange"], r["window_start"])  # noqa: E731
    streamed_core = sorted((r for r in streamed if r["exchange"] != "kraken"), key=key)
    assert [
        (key(r), r["total_quote_volume"], r["z_score"], r["is_alert"]) for r in streamed_core
    ] == [
        (key(r.asDict()), r["total_quote_volume"], r["z_score"], r["is_alert"])
        for r in sorted(static, key=lambda r: key(r.asDict()))
    ]
    assert [key(r)[1] for r in streamed_core if r["is_alert"]] == [naive(at(14 * 60))]
