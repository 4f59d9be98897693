"""The `schema_evolution_demo` batch job: add a column to an Iceberg table; old rows read NULL,
new rows carry values, and no data file is rewritten (SPEC §8).

    python -m spark_jobs.batch.schema_evolution_demo [--table schema_evolution_demo]
        [--column trade_imbalance]

It works on a demo table in the job's namespace (default `crypto_pulse.schema_evolution_demo`),
created afresh with `volume_aggregates`' schema and partitioning, so the real tables keep the
schema the jobs write (naming one of them is refused). Steps: write a few "old" aggregates,
list the data files (`table.inspect.files()`), add `<column> double` (a metadata-only commit:
no snapshot, no file touched), append "new" aggregates carrying the column, list again.
The printout shows both row sets, and the file lists side by side: every file from before is
still there with the same size and record count; the old files' own Parquet schema lacks the
column (readers fill NULL by field id).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.types import DoubleType

from spark_jobs.batch.evolution import (
    DataFile,
    FileDiff,
    diff_files,
    files_table,
    rows_table,
)
from spark_jobs.common.iceberg import conform, load_catalog
from spark_jobs.common.settings import SettingsError, load_job_settings
from spark_jobs.common.tables import TABLES, VOLUME_AGGREGATES

log = logging.getLogger(__name__)

JOB = "schema_evolution_demo"
DEFAULT_COLUMN = "trade_imbalance"
COLUMN_DOC = "(buy − sell) / (buy + sell) quote volume of the window; added by schema evolution"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHOWN = ("window_start", "symbol", "exchange", "trade_count", "total_quote_volume")


class DemoError(Exception):
    """Root of this job's errors."""


def aggregate(minute: int, symbol: str, exchange: str, price: float, trades: int) -> dict[str, Any]:
    """One `volume_aggregates` row for the 60 s window starting `minute` minutes after T0."""
    start = T0 + timedelta(minutes=minute)
    volume = 0.5 * trades
    return {
        "window_start": start,
        "window_end": start + timedelta(minutes=1),
        "symbol": symbol,
        "exchange": exchange,
        "trade_count": trades,
        "total_volume": volume,
        "total_quote_volume": volume * price,
        "vwap": price,
        "min_price": price * 0.999,
        "max_price": price * 1.001,
    }


# Two partitions (day, symbol) before; the new rows land in one of them, beside the old file.
OLD_ROWS = (
    aggregate(0, "BTC-USDT", "binance", 60_000.0, 40),
    aggregate(0, "BTC-USDT", "coinbase", 60_010.0, 25),
    aggregate(0, "ETH-USDT", "binance", 3_000.0, 30),
    aggregate(1, "ETH-USDT", "binance", 3_001.0, 35),
)
NEW_ROWS = (
    (aggregate(1, "BTC-USDT", "binance", 60_020.0, 44), 0.25),
    (aggregate(1, "BTC-USDT", "coinbase", 60_030.0, 21), -0.4),
)


@dataclass(frozen=True)
class DemoResult:
    table: str
    location: str
    column: str
    columns_before: tuple[str, ...]
    columns_after: tuple[str, ...]
    snapshot_before: int  # after the old rows
    snapshot_after_alter: int  # adding a column commits no snapshot: the same id
    rows_before: tuple[dict[str, Any], ...]
    rows_after: tuple[dict[str, Any], ...]
    files_before: tuple[DataFile, ...]
    files_after: tuple[DataFile, ...]
    old_file_columns: tuple[str, ...]  # the Parquet schema of an old data file

    @property
    def diff(self) -> FileDiff:
        return diff_files(self.files_before, self.files_after)

    def report(self) -> str:
        diff, column = self.diff, self.column
        shown = [*SHOWN, column]
        verdict = (
            f"no data file rewritten: all {len(self.files_before)} files from before are still "
            "listed with the same size and record count"
            if diff.untouched
            else f"DATA FILES REWRITTEN: {len(diff.changed)} changed, {len(diff.removed)} removed"
        )
        return "\n".join(
            [
                f"schema_evolution_demo on {self.table} ({self.location})",
                f"1. before: {len(self.rows_before)} rows in {len(self.files_before)} data files,"
                f" snapshot {self.snapshot_before}; columns: {', '.join(self.columns_before)}",
                rows_table(self.rows_before, SHOWN),
                f"2. ALTER TABLE ADD COLUMN {column} double: snapshot still "
                f"{self.snapshot_after_alter} (a metadata-only change); columns now: "
                f"{', '.join(self.columns_after)}",
                f"3. appended {len(self.rows_after) - len(self.rows_before)} rows carrying "
                f"{column}; all rows now (old rows read NULL):",
                rows_table(self.rows_after, shown),
                "data files after, against the list before:",
                files_table(diff, self.location),
                verdict + ";",
                f"an old file's own Parquet columns: {', '.join(self.old_file_columns)} — no "
                f"{column}: the reader fills NULL for it (Iceberg matches columns by field id)",
            ]
        )


def data_files(table: Table) -> tuple[DataFile, ...]:
    """The current snapshot's data files, from its manifests."""
    if table.current_snapshot() is None:
        return ()
    listed = table.inspect.files().select(["file_path", "file_size_in_bytes", "record_count"])
    return tuple(
        sorted(
            DataFile(row["file_path"], int(row["file_size_in_bytes"]), int(row["record_count"]))
            for row in listed.to_pylist()
        )
    )


def _rows(table: Table) -> tuple[dict[str, Any], ...]:
    data = table.scan().to_arrow()
    order = [("window_start", "ascending"), ("symbol", "ascending"), ("exchange", "ascending")]
    return tuple(data.sort_by(order).to_pylist())


def _append(table: Table, rows: list[dict[str, Any]]) -> None:
    arrow = pa.Table.from_pylist(rows, schema=table.schema().as_arrow())
    table.append(conform(arrow, table.schema(), ".".join(table.name())))


def file_columns(table: Table, path: str) -> tuple[str, ...]:
    with table.io.new_input(path).open() as stream:
        return tuple(pq.ParquetFile(stream).schema_arrow.names)


def fresh_demo_table(catalog: Catalog, namespace: str, name: str) -> Table:
    if name in TABLES:
        raise DemoError(
            f"refusing to use {namespace}.{name}: the demo drops and recreates its table, and "
            f"{name} is one the jobs write; pick another name"
        )
    identifier = (namespace, name)
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    with contextlib.suppress(NoSuchTableError):
        catalog.purge_table(identifier)  # a previous run's table and files
    return catalog.create_table(
        identifier,
        schema=VOLUME_AGGREGATES.iceberg_schema(),
        partition_spec=VOLUME_AGGREGATES.partition_spec(),
        properties={"comment": "schema evolution demo (a copy of volume_aggregates' layout)"},
    )


def run_demo(
    catalog: Catalog, namespace: str, name: str = JOB, column: str = DEFAULT_COLUMN
) -> DemoResult:
    table = fresh_demo_table(catalog, namespace, name)
    if column in table.schema().column_names:
        raise DemoError(f"{namespace}.{name} already has a column {column!r}")
    _append(table, list(OLD_ROWS))
    before = data_files(table)
    columns_before = tuple(table.schema().column_names)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    rows_before = _rows(table)

    with table.update_schema() as update:
        update.add_column(column, DoubleType(), doc=COLUMN_DOC)
    altered = table.current_snapshot()
    assert altered is not None

    _append(table, [{**row, column: value} for row, value in NEW_ROWS])
    return DemoResult(
        table=f"{namespace}.{name}",
        location=table.location(),
        column=column,
        columns_before=columns_before,
        columns_after=tuple(table.schema().column_names),
        snapshot_before=snapshot.snapshot_id,
        snapshot_after_alter=altered.snapshot_id,
        rows_before=rows_before,
        rows_after=_rows(table),
        files_before=before,
        files_after=data_files(table),
        old_file_columns=file_columns(table, before[0].path),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m spark_jobs.batch.{JOB}")
    parser.add_argument("--table", default=JOB, help="demo table in the namespace (recreated)")
    parser.add_argument("--column", default=DEFAULT_COLUMN, help="the double column to add")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_job_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_demo(
            load_catalog(settings), settings.tables.namespace, args.table, args.column
        )
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
