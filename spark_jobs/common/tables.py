"""The Iceberg tables of namespace `crypto_pulse`, declared once (SPEC §6.4, §7).

Each table is a `TableSpec`: its Spark schema (from `schemas`), its event-time column and its
partitioning, `day(<time column>)` + `symbol`. Everything else is derived from it:

- the Arrow schema (what the Iceberg sink casts a batch to: timestamps are µs UTC instants),
- the Iceberg schema and partition spec (field ids assigned here: columns 1..n in order, then
  nested element ids; partition fields from 1000, as Iceberg numbers them),
- the Athena DDL in `ddl/<table>.sql`, regenerated with

      python -m spark_jobs.common.tables ddl [--bucket NAME] [--namespace NS] [--out ddl/]

  The committed files carry the placeholder `${BUCKET}` in their `LOCATION`
  (`s3://${BUCKET}/warehouse/<namespace>.db/<table>`, where pyiceberg's Glue catalog puts a table
  for the warehouse `s3://<bucket>/warehouse`): substitute it (`envsubst`, or generate with
  `--bucket`) before running a file in Athena. The files hold exactly one statement and no
  comments, so they can be sent to Athena as they are.

Two differences between the DDL and the code are inherent to Athena, not drift: Athena's Iceberg
DDL can declare neither `timestamptz` nor `NOT NULL`, so a table created from `ddl/` has
`timestamp` columns (the values are still UTC) and only optional columns. `iceberg.ensure_tables`
accepts such a table; tables the code creates use `timestamptz` and the schemas' nullability.

`anomalies_reprocessed` is `anomalies` plus `source_snapshot_id` (bigint, required): the id of the
`raw_trades` snapshot the batch job `reprocess_anomalies` read (time travel), so every reprocessed
alert says which data it was computed from.

This module imports only pyiceberg's value types (schema, types, transforms), no catalog or I/O.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, IdentityTransform, Transform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
)
from pyspark.sql import types as T

from spark_jobs.common import schemas
from spark_jobs.common.settings import TableSettings

DEFAULT_NAMESPACE = TableSettings().namespace  # "crypto_pulse"; jobs pass settings.tables.namespace
BUCKET_PLACEHOLDER = "${BUCKET}"
WAREHOUSE_PREFIX = "warehouse"  # s3://<bucket>/warehouse is the Iceberg warehouse on AWS
PARTITION_SYMBOL_COLUMN = "symbol"
TBLPROPERTIES = (("table_type", "ICEBERG"), ("format", "parquet"))
DDL_DIR = Path(__file__).resolve().parents[2] / "ddl"

# Iceberg numbers partition fields from 1000 (PARTITION_FIELD_ID_START in the spec).
_PARTITION_FIELD_ID_START = 1000
_UTC = "UTC"


class UnsupportedTypeError(TypeError):
    """A column type with no mapping to Arrow, Iceberg or Athena here."""


@dataclass(frozen=True)
class PartitionColumn:
    """One partition field: `transform(source)`."""

    source: str
    transform: Literal["day", "identity"]

    @property
    def name(self) -> str:
        """The partition field's name, as Iceberg (Spark, Athena) name it."""
        return f"{self.source}_day" if self.transform == "day" else self.source

    def ddl(self) -> str:
        return f"day(`{self.source}`)" if self.transform == "day" else f"`{self.source}`"


@dataclass(frozen=True)
class TableSpec:
    """A table: name, Spark schema, event-time column; partitioned by day(time) + symbol."""

    name: str
    schema: T.StructType
    time_column: str

    def __post_init__(self) -> None:
        names = self.schema.fieldNames()
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        if self.time_column not in names:
            raise ValueError(f"table {self.name}: no time column {self.time_column!r}")
        if not isinstance(self.schema[self.time_column].dataType, T.TimestampType):
            raise ValueError(f"table {self.name}: {self.time_column!r} is not a timestamp")
        if PARTITION_SYMBOL_COLUMN not in names:
            raise ValueError(f"table {self.name}: no {PARTITION_SYMBOL_COLUMN!r} column")

    @property
    def partition(self) -> tuple[PartitionColumn, ...]:
        return (
            PartitionColumn(self.time_column, "day"),
            PartitionColumn(PARTITION_SYMBOL_COLUMN, "identity"),
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.fieldNames())

    def identifier(self, namespace: str = DEFAULT_NAMESPACE) -> tuple[str, str]:
        return (namespace, self.name)

    def arrow_schema(self) -> pa.Schema:
        return arrow_schema(self.schema)

    def iceberg_schema(self) -> Schema:
        return iceberg_schema(self.arrow_schema())

    def partition_spec(self) -> PartitionSpec:
        """The partition spec, against `iceberg_schema()`'s field ids."""
        schema = self.iceberg_schema()
        fields = []
        for offset, column in enumerate(self.partition):
            transform: Transform[Any, Any] = (
                DayTransform() if column.transform == "day" else IdentityTransform()
            )
            fields.append(
                PartitionField(
                    source_id=schema.find_field(column.source).field_id,
                    field_id=_PARTITION_FIELD_ID_START + offset,
                    transform=transform,
                    name=column.name,
                )
            )
        return PartitionSpec(*fields)

    def location(self, bucket: str = BUCKET_PLACEHOLDER, namespace: str = DEFAULT_NAMESPACE) -> str:
        return f"s3://{bucket}/{WAREHOUSE_PREFIX}/{namespace}.db/{self.name}"

    def ddl(self, bucket: str = BUCKET_PLACEHOLDER, namespace: str = DEFAULT_NAMESPACE) -> str:
        """Athena's `CREATE TABLE` for this table (Iceberg, Parquet); ends with a newline."""
        columns = ",\n".join(
            f"  `{field.name}` {athena_type(field.field_type)}"
            for field in self.iceberg_schema().fields
        )
        partition = ", ".join(column.ddl() for column in self.partition)
        properties = ", ".join(f"'{key}'='{value}'" for key, value in TBLPROPERTIES)
        return (
            f"CREATE TABLE {namespace}.{self.name} (\n{columns}\n)\n"
            f"PARTITIONED BY ({partition})\n"
            f"LOCATION '{self.location(bucket, namespace)}'\n"
            f"TBLPROPERTIES ({properties})\n"
        )


# --- Spark -> Arrow -> Iceberg -> Athena ---------------------------------------------------------


def arrow_type(kind: T.DataType) -> pa.DataType:
    """Spark type -> Arrow type; timestamps are µs instants labelled UTC."""
    simple: dict[type[T.DataType], pa.DataType] = {
        T.StringType: pa.string(),
        T.DoubleType: pa.float64(),
        T.LongType: pa.int64(),
        T.IntegerType: pa.int32(),
        T.BooleanType: pa.bool_(),
        T.TimestampType: pa.timestamp("us", tz=_UTC),
    }
    if type(kind) in simple:
        return simple[type(kind)]
    if isinstance(kind, T.ArrayType):
        element = pa.field("element", arrow_type(kind.elementType), nullable=kind.containsNull)
        return pa.list_(element)
    raise UnsupportedTypeError(f"no Arrow mapping for Spark type {kind.simpleString()}")


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """Spark schema -> Arrow schema, same field order and nullability."""
    return pa.schema(
        [pa.field(f.name, arrow_type(f.dataType), nullable=f.nullable) for f in schema.fields]
    )


def _iceberg_type(kind: pa.DataType, next_id: list[int]) -> IcebergType:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return StringType()
    if pa.types.is_float64(kind):
        return DoubleType()
    if pa.types.is_int64(kind):
        return LongType()
    if pa.types.is_int32(kind):
        return IntegerType()
    if pa.types.is_boolean(kind):
        return BooleanType()
    if pa.types.is_timestamp(kind) and kind.unit == "us":
        if kind.tz is None:
            return TimestampType()
        if kind.tz in (_UTC, "+00:00", "Etc/UTC"):
            return TimestamptzType()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        element_id = next_id[0]
        next_id[0] += 1
        element = kind.value_field
        return ListType(
            element_id=element_id,
            element_type=_iceberg_type(element.type, next_id),
            element_required=not element.nullable,
        )
    raise UnsupportedTypeError(f"no Iceberg mapping for Arrow type {kind}")


def iceberg_schema(schema: pa.Schema) -> Schema:
    """Arrow schema -> Iceberg schema: columns get ids 1..n in order, nested elements after."""
    next_id = [len(schema) + 1]
    fields = [
        NestedField(
            field_id=position,
            name=field.name,
            field_type=_iceberg_type(field.type, next_id),
            required=not field.nullable,
        )
        for position, field in enumerate(schema, start=1)
    ]
    return Schema(*fields)


def athena_type(kind: IcebergType) -> str:
    """Iceberg type -> the type Athena's Iceberg DDL declares (timestamptz: `timestamp`)."""
    simple: dict[type[IcebergType], str] = {
        StringType: "string",
        DoubleType: "double",
        LongType: "bigint",
        IntegerType: "int",
        BooleanType: "boolean",
        TimestampType: "timestamp",
        TimestamptzType: "timestamp",
    }
    if type(kind) in simple:
        return simple[type(kind)]
    if isinstance(kind, ListType):
        return f"array<{athena_type(kind.element_type)}>"
    raise UnsupportedTypeError(f"no Athena mapping for Iceberg type {kind}")


# --- The tables ----------------------------------------------------------------------------------

ANOMALY_REPROCESSED = T.StructType(
    [*schemas.ANOMALY_ALERT.fields, T.StructField("source_snapshot_id", T.LongType(), False)]
)

RAW_TRADES = TableSpec("raw_trades", schemas.UNIFIED_TRADE, "timestamp")
VOLUME_AGGREGATES = TableSpec("volume_aggregates", schemas.WINDOWED_AGGREGATE, "window_start")
ANOMALIES = TableSpec("anomalies", schemas.ANOMALY_ALERT, "window_start")
WHALE_TRADES = TableSpec("whale_trades", schemas.WHALE_ALERT, "timestamp")
SPREADS = TableSpec("spreads", schemas.SPREAD_RECORD, "window_start")
ALERTS = TableSpec("alerts", schemas.ALERT, "event_time")
ANOMALIES_REPROCESSED = TableSpec("anomalies_reprocessed", ANOMALY_REPROCESSED, "window_start")

TABLES: Mapping[str, TableSpec] = {
    spec.name: spec
    for spec in (
        RAW_TRADES,
        VOLUME_AGGREGATES,
        ANOMALIES,
        WHALE_TRADES,
        SPREADS,
        ALERTS,
        ANOMALIES_REPROCESSED,
    )
}


def table_spec(name: str) -> TableSpec:
    """The spec of table `name` (bare, or qualified `<namespace>.<name>`)."""
    bare = name.rsplit(".", 1)[-1]
    try:
        return TABLES[bare]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {sorted(TABLES)}") from None


def write_ddl(
    out_dir: Path,
    bucket: str = BUCKET_PLACEHOLDER,
    namespace: str = DEFAULT_NAMESPACE,
    specs: Iterable[TableSpec] = TABLES.values(),
) -> list[Path]:
    """Write `<out_dir>/<table>.sql` for every table; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in specs:
        path = out_dir / f"{spec.name}.sql"
        path.write_text(spec.ddl(bucket, namespace), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.common.tables", description="Iceberg table declarations."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ddl = commands.add_parser("ddl", help="write the Athena DDL, one file per table")
    ddl.add_argument(
        "--bucket",
        default=BUCKET_PLACEHOLDER,
        help="S3 bucket of the warehouse (default: the placeholder ${BUCKET}, as committed)",
    )
    ddl.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="Glue database / namespace")
    ddl.add_argument("--out", type=Path, default=DDL_DIR, help="output folder (default: ddl/)")
    args = parser.parse_args(argv)
    for path in write_ddl(args.out, args.bucket, args.namespace):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
