"""reprocess_anomalies on a local warehouse: time travel to an older `raw_trades` snapshot, the
current detector on it, idempotent per snapshot, compared with a hand-built `anomalies`."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from pyiceberg.catalog import Catalog
from pyspark.sql import SparkSession

from spark_jobs.batch import reprocess_anomalies
from spark_jobs.batch.reprocess_anomalies import (
    SOURCE_SNAPSHOT_PROPERTY,
    SnapshotNotFoundError,
    reprocess,
    volume_detector,
)
from spark_jobs.common import schemas
from spark_jobs.common.iceberg import IcebergSink, ensure_tables, load_catalog
from spark_jobs.common.registry import load_registry
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.tables import arrow_schema
from spark_jobs.detectors.volume_anomaly import VolumeAnomalyDetector
from tests.spark_jobs.builders import at, trade

NS = "crypto_pulse"
QUIET = (1000.0, 1100.0)  # alternating quote volume of a quiet minute


def minute_volumes(minutes: range, spikes: dict[int, float]) -> dict[int, float]:
    return {m: spikes.get(m, QUIET[m % 2]) for m in minutes}


def trades(volumes: dict[int, float], exchange: str) -> list[dict[str, Any]]:
    """One trade per minute (price 100) with that minute's quote volume."""
    return [
        trade(minute * 60 + 30, price=100.0, quantity=volume / 100.0, exchange=exchange)
        for minute, volume in volumes.items()
    ]


def arrow(rows: list[dict[str, Any]], schema: Any) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(schema))


@pytest.fixture
def catalog(settings: JobSettings) -> Catalog:
    catalog = load_catalog(settings)
    ensure_tables(catalog, NS)
    return catalog


@pytest.fixture
def detector() -> VolumeAnomalyDetector:
    """MOD-001 as config/features.yaml configures it (60 s, 60 windows, ≥ 10, z > 2.5)."""
    return volume_detector(load_registry())


@pytest.fixture
def snapshots(catalog: Catalog) -> tuple[int, int]:
    """raw_trades, appended twice as the archiver does. First: minutes 0-14 of binance (spike
    at 12) and coinbase (spike at 13); then: binance minutes 15-29 (spike at 25)."""
    sink = IcebergSink(catalog, f"{NS}.raw_trades", "trade_archiver:test")
    first = trades(minute_volumes(range(15), {12: 5000.0}), "binance") + trades(
        minute_volumes(range(15), {13: 6000.0}), "coinbase"
    )
    sink.append(arrow(first, schemas.UNIFIED_TRADE), 0)
    older = sink.table.current_snapshot()
    assert older is not None
    time.sleep(0.005)  # snapshot times are in ms: keep the two apart for --as-of
    later = trades(minute_volumes(range(15, 30), {25: 5000.0}), "binance")
    sink.append(arrow(later, schemas.UNIFIED_TRADE), 1)
    newer = sink.table.current_snapshot()
    assert newer is not None
    return older.snapshot_id, newer.snapshot_id


def stored_anomaly(minute: int, z: float, exchange: str = "binance") -> dict[str, Any]:
    start = at(minute * 60)
    return {
        "alert_id": f"volume_anomaly:{exchange}:BTC-USDT:{start:%Y-%m-%dT%H:%M:%SZ}",
        "symbol": "BTC-USDT",
        "exchange": exchange,
        "window_start": start,
        "window_end": at(minute * 60 + 60),
        "total_quote_volume": 5000.0,
        "baseline_mean": 1050.0,
        "baseline_std": 50.0,
        "baseline_windows": 12,
        "z_score": z,
        "threshold": 2.5,
        "detected_at": datetime(2026, 1, 1, 1, tzinfo=UTC),
    }


@pytest.fixture
def stored(catalog: Catalog) -> None:
    """What the streaming job wrote to `anomalies`: minute 12 (found again), minute 5 (not
    found again), minute 25 (after the older snapshot's data)."""
    rows = [stored_anomaly(12, 3.0), stored_anomaly(5, 2.6), stored_anomaly(25, 4.0)]
    IcebergSink(catalog, f"{NS}.anomalies", "volume_anomaly:test").append(
        arrow(rows, schemas.ANOMALY_ALERT), 0
    )


def reprocessed_rows(catalog: Catalog) -> list[tuple[int, str]]:
    table = catalog.load_table((NS, "anomalies_reprocessed"))
    rows = table.scan().to_arrow().to_pylist()
    return sorted((r["source_snapshot_id"], r["alert_id"]) for r in rows)


def test_the_older_snapshot_is_reprocessed_once_and_compared(
    spark: SparkSession,
    catalog: Catalog,
    detector: VolumeAnomalyDetector,
    snapshots: tuple[int, int],
    stored: None,
) -> None:
    older, newer = snapshots
    result = reprocess(spark, catalog, NS, detector, snapshot_id=older)

    assert result.snapshot.snapshot_id == older
    assert result.trades == 30  # the first append only
    found = {(r["exchange"], r["window_start"]): r for r in result.anomalies}
    assert sorted(found) == [("binance", at(12 * 60)), ("coinbase", at(13 * 60))]
    baseline = [QUIET[m % 2] for m in range(12)]
    z = (5000.0 - statistics.mean(baseline)) / statistics.stdev(baseline)
    binance = found[("binance", at(12 * 60))]
    assert binance["z_score"] == pytest.approx(z)
    assert binance["source_snapshot_id"] == older
    assert binance["alert_id"] == "volume_anomaly:binance:BTC-USDT:2026-01-01T00:12:00Z"

    comparison = result.comparison
    assert [(c.key[0], c.key[2], c.old_z) for c in comparison.matched] == [
        ("binance", at(12 * 60), 3.0)
    ]
    assert comparison.matched[0].delta == pytest.approx(z - 3.0)
    assert [(r["exchange"], r["window_start"]) for r in comparison.only_new] == [
        ("coinbase", at(13 * 60))
    ]
    assert [r["window_start"] for r in comparison.only_old] == [at(5 * 60)]
    assert comparison.out_of_scope == 1  # minute 25: not in the older snapshot's windows

    ids = [(older, "volume_anomaly:binance:BTC-USDT:2026-01-01T00:12:00Z")]
    ids.append((older, "volume_anomaly:coinbase:BTC-USDT:2026-01-01T00:13:00Z"))
    assert reprocessed_rows(catalog) == ids
    output = catalog.load_table((NS, "anomalies_reprocessed"))
    head = output.current_snapshot()
    assert head is not None
    assert head.summary is not None
    assert head.summary.get(SOURCE_SNAPSHOT_PROPERTY) == str(older)

    # Again for the same snapshot: its rows are replaced, not duplicated.
    again = reprocess(spark, catalog, NS, detector, snapshot_id=older)
    assert again.replaced == 2
    assert reprocessed_rows(catalog) == ids

    # The current snapshot sees the second append too: minute 25 now matches.
    current = reprocess(spark, catalog, NS, detector)
    assert current.snapshot.snapshot_id == newer
    assert current.trades == 45
    assert sorted(c.key[2] for c in current.comparison.matched) == [at(12 * 60), at(25 * 60)]
    assert current.comparison.out_of_scope == 0
    assert [row for row in reprocessed_rows(catalog) if row[0] == older] == ids
    assert len(reprocessed_rows(catalog)) == 5


def test_main_reprocesses_as_of_a_time_and_prints_the_comparison(
    spark: SparkSession,
    settings_env: JobSettings,
    snapshots: tuple[int, int],
    stored: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    older, _ = snapshots
    table = load_catalog(settings_env).load_table((NS, "raw_trades"))
    taken = table.snapshot_by_id(older)
    assert taken is not None
    as_of = datetime.fromtimestamp(taken.timestamp_ms / 1000, UTC).isoformat()

    assert reprocess_anomalies.main(["--as-of", as_of, "--top", "5"]) == 0

    out = capsys.readouterr().out
    assert f"raw_trades snapshot {older} " in out
    assert "30 trades" in out
    assert "anomalies_reprocessed: 2 anomalies written" in out
    assert "  matched   1" in out
    assert "  only new  1" in out
    assert "  only old  1" in out
    assert "outside the reprocessed windows (not compared): 1" in out
    assert "binance   BTC-USDT  2026-01-01T00:12:00Z  3.000" in out


def test_unknown_snapshots_are_reported(
    spark: SparkSession,
    catalog: Catalog,
    detector: VolumeAnomalyDetector,
    snapshots: tuple[int, int],
) -> None:
    with pytest.raises(SnapshotNotFoundError, match="has no snapshot 42"):
        reprocess(spark, catalog, NS, detector, snapshot_id=42)
    with pytest.raises(SnapshotNotFoundError, match="had no snapshot yet at 2000-01-01"):
        reprocess(spark, catalog, NS, detector, as_of=datetime(2000, 1, 1, tzinfo=UTC))
