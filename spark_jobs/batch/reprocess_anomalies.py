"""The `reprocess_anomalies` batch job: the current volume-anomaly detector over `raw_trades` as
it was at a snapshot (Iceberg time travel), into `anomalies_reprocessed` (SPEC §8).

    python -m spark_jobs.batch.reprocess_anomalies [--snapshot-id ID | --as-of ISO]
        [--features config/features.yaml] [--top 10]

- Source: `raw_trades` at `--snapshot-id`, or the snapshot that was current at `--as-of`
  (default: the current one), read through pyiceberg (`scan(snapshot_id=…)`) into the driver
  and handed to Spark as Arrow. That suits reprocessing days of trades; for months, read the
  snapshot with Spark's Iceberg runtime on EMR instead (`spark.read.option("snapshot-id", …)`).
  `raw_trades` holds only trades that passed the quality checks, so they go straight in.
- Detector: MOD-001 as `config/features.yaml` configures it now (SSM overlay included), on its
  static path (`applyInPandas`, the same scoring as the stream).
- Sink: `anomalies_reprocessed` = the anomalies + `source_snapshot_id`. Idempotent per source
  snapshot: a rerun replaces that snapshot's rows (one atomic overwrite commit filtered on
  `source_snapshot_id`), so they are never duplicated and always reflect the current detector.
- Output: a comparison with `anomalies` (`spark_jobs.batch.comparison`): matched / only new /
  only old, and the largest z-score differences.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.batch.comparison import AnomalyComparison, Scope, compare_anomalies
from spark_jobs.batch.comparison import format_comparison as format_anomaly_comparison
from spark_jobs.common import schemas
from spark_jobs.common.aws import client
from spark_jobs.common.detector import ModuleConfigError
from spark_jobs.common.iceberg import WRITER_PROPERTY, conform, ensure_tables, load_catalog
from spark_jobs.common.registry import DEFAULT_FEATURES, ModuleRegistry, load_registry
from spark_jobs.common.session import build_session
from spark_jobs.common.settings import SettingsError, load_job_settings
from spark_jobs.common.tables import ANOMALIES, ANOMALIES_REPROCESSED, RAW_TRADES, arrow_schema
from spark_jobs.detectors.volume_anomaly import VolumeAnomalyDetector

log = logging.getLogger(__name__)

JOB = "reprocess_anomalies"
SOURCE_SNAPSHOT_COLUMN = "source_snapshot_id"
SOURCE_SNAPSHOT_PROPERTY = "crypto-pulse.source-snapshot-id"
TRADE_COLUMNS = tuple(schemas.UNIFIED_TRADE.fieldNames())


class ReprocessError(Exception):
    """Root of this job's errors."""


class SnapshotNotFoundError(ReprocessError):
    """No `raw_trades` snapshot with that id, or none current at that time."""


@dataclass(frozen=True)
class ReprocessResult:
    snapshot: Snapshot
    trades: int
    anomalies: tuple[dict[str, Any], ...]  # as written to anomalies_reprocessed
    replaced: int  # rows of this snapshot that were there before (a rerun)
    scope: Scope
    comparison: AnomalyComparison

    def report(self, top_n: int = 10) -> str:
        taken = datetime.fromtimestamp(self.snapshot.timestamp_ms / 1000, UTC)
        windows = ", ".join(
            f"{exchange} {symbol} {first:%Y-%m-%dT%H:%M}Z..{last:%H:%M}Z"
            for (exchange, symbol), (first, last) in sorted(self.scope.items())
        )
        return (
            f"reprocess_anomalies: raw_trades snapshot {self.snapshot.snapshot_id} "
            f"({taken:%Y-%m-%dT%H:%M:%S}Z), {self.trades} trades; series: {windows or 'none'}\n"
            f"anomalies_reprocessed: {len(self.anomalies)} anomalies written"
            + (f" (replacing {self.replaced} from an earlier run)" if self.replaced else "")
            + "\ncompared with anomalies:\n"
            + format_anomaly_comparison(self.comparison, top_n)
        )


def resolve_snapshot(
    table: Table, snapshot_id: int | None = None, as_of: datetime | None = None
) -> Snapshot:
    """The snapshot with `snapshot_id`, the one current at `as_of`, or the current one."""
    name = ".".join(table.name())
    if snapshot_id is not None:
        snapshot = table.snapshot_by_id(snapshot_id)
        if snapshot is None:
            known = [s.snapshot_id for s in table.snapshots()][-5:]
            raise SnapshotNotFoundError(
                f"{name} has no snapshot {snapshot_id} (latest ones: {known})"
            )
        return snapshot
    if as_of is not None:
        snapshot = table.snapshot_as_of_timestamp(int(as_of.timestamp() * 1000))
        if snapshot is None:
            raise SnapshotNotFoundError(f"{name} had no snapshot yet at {as_of.isoformat()}")
        return snapshot
    current = table.current_snapshot()
    if current is None:
        raise SnapshotNotFoundError(f"{name} has no snapshot: it was never written")
    return current


def read_trades(table: Table, snapshot_id: int) -> pa.Table:
    """The table's trades as of the snapshot, as unified trade columns."""
    arrow = table.scan(snapshot_id=snapshot_id, selected_fields=TRADE_COLUMNS).to_arrow()
    return arrow.select(list(TRADE_COLUMNS)).cast(arrow_schema(schemas.UNIFIED_TRADE))


def series_scope(records: DataFrame) -> Scope:
    """Per series, the first and last window the detector scored."""
    rows = (
        records.groupBy("exchange", "symbol")
        .agg(F.min("window_start").alias("first"), F.max("window_start").alias("last"))
        .collect()
    )
    return {(r["exchange"], r["symbol"]): (r["first"], r["last"]) for r in rows}


def write_reprocessed(table: Table, rows: pa.Table, snapshot_id: int) -> int:
    """Make `rows` the table's rows of source snapshot `snapshot_id`, in one commit; returns how
    many rows of that snapshot it replaced."""
    selection = EqualTo(term=SOURCE_SNAPSHOT_COLUMN, value=snapshot_id)
    # Counted first: pyiceberg warns when a delete matches nothing.
    previous = table.scan(row_filter=selection, selected_fields=("alert_id",)).to_arrow().num_rows
    rows = conform(rows, table.schema(), ".".join(table.name()))
    properties = {WRITER_PROPERTY: JOB, SOURCE_SNAPSHOT_PROPERTY: str(snapshot_id)}
    if previous:
        table.overwrite(rows, overwrite_filter=selection, snapshot_properties=properties)
    elif rows.num_rows:
        table.append(rows, snapshot_properties=properties)
    return int(previous)


def reprocess(
    spark: SparkSession,
    catalog: Catalog,
    namespace: str,
    detector: VolumeAnomalyDetector,
    snapshot_id: int | None = None,
    as_of: datetime | None = None,
) -> ReprocessResult:
    tables = ensure_tables(catalog, namespace, (RAW_TRADES, ANOMALIES, ANOMALIES_REPROCESSED))
    snapshot = resolve_snapshot(tables[RAW_TRADES.name], snapshot_id, as_of)
    source = snapshot.snapshot_id
    log.info("reprocessing raw_trades snapshot %s with %s", source, detector.params)
    trades = read_trades(tables[RAW_TRADES.name], source)
    records = detector.process(spark.createDataFrame(trades)).persist()
    try:
        found = detector.anomalies(records).withColumn(
            SOURCE_SNAPSHOT_COLUMN, F.lit(source).cast("long")
        )
        rows = found.toArrow()
        scope = series_scope(records)
    finally:
        records.unpersist()
    output = tables[ANOMALIES_REPROCESSED.name]
    replaced = write_reprocessed(output, rows, source)
    written = tuple(conform(rows, output.schema(), ANOMALIES_REPROCESSED.name).to_pylist())
    stored = tables[ANOMALIES.name].scan().to_arrow().to_pylist()
    return ReprocessResult(
        snapshot=snapshot,
        trades=trades.num_rows,
        anomalies=written,
        replaced=replaced,
        scope=scope,
        comparison=compare_anomalies(stored, written, scope),
    )


def volume_detector(registry: ModuleRegistry) -> VolumeAnomalyDetector:
    detector = registry.get(VolumeAnomalyDetector.module_id)
    if not isinstance(detector, VolumeAnomalyDetector):
        raise ModuleConfigError(f"{detector.module_id} is not the volume anomaly detector")
    return detector


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m spark_jobs.batch.{JOB}")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--snapshot-id", type=int, help="raw_trades snapshot to read")
    source.add_argument("--as-of", type=_instant, help="ISO time: the snapshot current then")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES), help="features.yaml")
    parser.add_argument("--top", type=int, default=10, help="rows per comparison table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_job_settings()
        detector = volume_detector(
            load_registry(args.features, ssm=lambda: client("ssm", settings))
        )
    except (SettingsError, ModuleConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = build_session(settings, JOB)
    catalog = load_catalog(settings)
    try:
        result = reprocess(
            spark, catalog, settings.tables.namespace, detector, args.snapshot_id, args.as_of
        )
    except ReprocessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.report(args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
