"""The table declarations, and the Athena DDL in ddl/ that must agree with them (SPEC §7)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
import sqlglot
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import LongType, TimestamptzType
from pyspark.sql import types as T
from sqlglot import expressions as exp

from spark_jobs.common import schemas, tables
from spark_jobs.common.tables import DDL_DIR, TABLES, TableSpec

EXPECTED_TABLES = {
    "raw_trades": (schemas.UNIFIED_TRADE, "timestamp"),
    "volume_aggregates": (schemas.WINDOWED_AGGREGATE, "window_start"),
    "anomalies": (schemas.ANOMALY_ALERT, "window_start"),
    "whale_trades": (schemas.WHALE_ALERT, "timestamp"),
    "spreads": (schemas.SPREAD_RECORD, "window_start"),
    "alerts": (schemas.ALERT, "event_time"),
    "anomalies_reprocessed": (schemas.ANOMALY_ALERT, "window_start"),
}

# Written out here, independently of tables.athena_type: Spark type -> Athena DDL type.
ATHENA_TYPES: dict[type[T.DataType], str] = {
    T.StringType: "string",
    T.DoubleType: "double",
    T.LongType: "bigint",
    T.IntegerType: "int",
    T.BooleanType: "boolean",
    T.TimestampType: "timestamp",
}


def expected_athena_type(kind: T.DataType) -> str:
    if isinstance(kind, T.ArrayType):
        return f"array<{expected_athena_type(kind.elementType)}>"
    return ATHENA_TYPES[type(kind)]


@dataclass
class ParsedDdl:
    """What a `CREATE TABLE` says, read back from sqlglot's Athena parse tree."""

    namespace: str
    table: str
    columns: list[tuple[str, str]]
    partition: list[tuple[str, str]]  # (transform, column)
    location: str | None
    tblproperties: dict[str, str]
    external: bool
    stored_as: bool


# sqlglot's parsed type -> the Athena DDL spelling (Hive-style: `string`, not `varchar`).
SQLGLOT_TYPES = {
    exp.DataType.Type.TEXT: "string",
    exp.DataType.Type.DOUBLE: "double",
    exp.DataType.Type.BIGINT: "bigint",
    exp.DataType.Type.INT: "int",
    exp.DataType.Type.BOOLEAN: "boolean",
    exp.DataType.Type.TIMESTAMP: "timestamp",
}


def ddl_type_name(kind: exp.DataType) -> str:
    if kind.this == exp.DataType.Type.ARRAY:
        (element,) = kind.expressions
        return f"array<{ddl_type_name(element)}>"
    return SQLGLOT_TYPES.get(kind.this, f"unexpected {kind.sql()}")


def parse_ddl(sql: str) -> ParsedDdl:
    create = sqlglot.parse_one(sql, read="athena")
    assert isinstance(create, exp.Create), f"not a CREATE statement: {sql[:60]!r}"
    assert str(create.args.get("kind")).upper() == "TABLE"
    schema = create.this
    assert isinstance(schema, exp.Schema)
    table = schema.this
    columns = [
        (col.this.name, ddl_type_name(col.args["kind"]))
        for col in schema.expressions
        if isinstance(col, exp.ColumnDef)
    ]
    properties = create.args.get("properties")
    props = list(properties.expressions) if properties is not None else []
    partition: list[tuple[str, str]] = []
    location = None
    tblproperties: dict[str, str] = {}
    for prop in props:
        if isinstance(prop, exp.PartitionedByProperty):
            for item in prop.this.expressions:
                if isinstance(item, exp.Day):
                    column = item.find(exp.Column)
                    assert column is not None
                    partition.append(("day", column.name))
                elif isinstance(item, exp.Identifier | exp.Column):
                    partition.append(("identity", item.name))
                else:
                    partition.append((type(item).__name__.lower(), item.sql()))
        elif isinstance(prop, exp.LocationProperty):
            location = prop.this.name
        elif type(prop) is exp.Property:
            tblproperties[prop.this.name] = prop.args["value"].name
    return ParsedDdl(
        namespace=table.db,
        table=table.name,
        columns=columns,
        partition=partition,
        location=location,
        tblproperties=tblproperties,
        external=any(isinstance(p, exp.ExternalProperty) for p in props),
        stored_as=any(isinstance(p, exp.FileFormatProperty) for p in props),
    )


def ddl_files() -> list[Path]:
    return sorted(DDL_DIR.glob("*.sql"))


# --- The declarations ----------------------------------------------------------------------------


def test_the_seven_tables_with_their_schemas_and_time_columns() -> None:
    assert list(TABLES) == list(EXPECTED_TABLES)
    for name, (schema, time_column) in EXPECTED_TABLES.items():
        spec = TABLES[name]
        assert spec.name == name
        assert spec.time_column == time_column
        if name != "anomalies_reprocessed":
            assert spec.schema == schema


def test_anomalies_reprocessed_is_anomalies_plus_the_source_snapshot() -> None:
    spec = TABLES["anomalies_reprocessed"]
    assert spec.schema.fields[:-1] == schemas.ANOMALY_ALERT.fields
    last = spec.schema.fields[-1]
    assert (last.name, last.dataType, last.nullable) == ("source_snapshot_id", T.LongType(), False)
    field = spec.iceberg_schema().find_field("source_snapshot_id")
    assert isinstance(field.field_type, LongType)
    assert field.required


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_is_partitioned_by_day_of_its_time_column_and_symbol(name: str) -> None:
    spec = TABLES[name]
    schema = spec.iceberg_schema()
    fields = spec.partition_spec().fields
    assert [(type(f.transform), schema.find_column_name(f.source_id), f.name) for f in fields] == [
        (DayTransform, spec.time_column, f"{spec.time_column}_day"),
        (IdentityTransform, "symbol", "symbol"),
    ]
    assert [f.field_id for f in fields] == [1000, 1001]


@pytest.mark.parametrize("name", list(TABLES))
def test_iceberg_schema_keeps_order_nullability_and_makes_timestamps_utc_instants(
    name: str,
) -> None:
    spec = TABLES[name]
    iceberg = spec.iceberg_schema()
    assert [f.field_id for f in iceberg.fields] == list(range(1, len(spec.schema.fields) + 1))
    for spark_field, field in zip(spec.schema.fields, iceberg.fields, strict=True):
        assert field.name == spark_field.name
        assert field.required is (not spark_field.nullable)
        if isinstance(spark_field.dataType, T.TimestampType):
            assert isinstance(field.field_type, TimestamptzType)


@pytest.mark.parametrize("name", list(TABLES))
def test_arrow_schema_is_microsecond_utc_with_the_spark_nullability(name: str) -> None:
    spec = TABLES[name]
    arrow = spec.arrow_schema()
    assert arrow.names == spec.schema.fieldNames()
    for spark_field, field in zip(spec.schema.fields, arrow, strict=True):
        assert field.nullable is spark_field.nullable
        if isinstance(spark_field.dataType, T.TimestampType):
            assert field.type == pa.timestamp("us", tz="UTC")
    # pyiceberg's own rendering of our Iceberg schema gives the same columns and instants.
    rendered = spec.iceberg_schema().as_arrow()
    assert rendered.names == arrow.names
    assert [f.nullable for f in rendered] == [f.nullable for f in arrow]


def test_arrays_map_through_every_layer() -> None:
    schema = T.StructType(
        [
            T.StructField("symbol", T.StringType(), False),
            T.StructField("at", T.TimestampType(), False),
            T.StructField("checks", T.ArrayType(T.StringType(), containsNull=False), True),
        ]
    )
    spec = TableSpec("with_array", schema, "at")
    assert spec.arrow_schema().field("checks").type == pa.list_(
        pa.field("element", pa.string(), nullable=False)
    )
    checks = spec.iceberg_schema().find_field("checks")
    assert str(checks.field_type) == "list<string>"
    assert checks.field_type.element_id == 4  # type: ignore[attr-defined]
    assert "`checks` array<string>" in spec.ddl()


def test_unsupported_types_and_bad_specs_fail_clearly() -> None:
    binary = T.StructType(
        [
            T.StructField("symbol", T.StringType()),
            T.StructField("at", T.TimestampType()),
            T.StructField("raw", T.BinaryType()),
        ]
    )
    with pytest.raises(tables.UnsupportedTypeError, match="binary"):
        TableSpec("t", binary, "at").arrow_schema()
    with pytest.raises(ValueError, match="no time column 'nope'"):
        TableSpec("t", binary, "nope")
    with pytest.raises(ValueError, match="'symbol' is not a timestamp"):
        TableSpec("t", binary, "symbol")
    with pytest.raises(KeyError, match=r"unknown table 'crypto_pulse\.nope'"):
        tables.table_spec("crypto_pulse.nope")
    assert tables.table_spec("crypto_pulse.alerts") is TABLES["alerts"]


# --- The DDL -------------------------------------------------------------------------------------


def test_one_committed_ddl_file_per_table() -> None:
    assert [p.stem for p in ddl_files()] == sorted(TABLES)


@pytest.mark.parametrize("name", list(TABLES))
def test_committed_ddl_is_what_the_code_generates(name: str) -> None:
    committed = (DDL_DIR / f"{name}.sql").read_text(encoding="utf-8")
    assert committed == TABLES[name].ddl(), (
        f"ddl/{name}.sql is stale: run `python -m spark_jobs.common.tables ddl`"
    )


@pytest.mark.parametrize("name", list(TABLES))
def test_ddl_and_code_schema_agree_column_by_column(name: str) -> None:
    spec = TABLES[name]
    parsed = parse_ddl((DDL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
    assert (parsed.namespace, parsed.table) == ("crypto_pulse", name)
    assert parsed.columns == [
        (field.name, expected_athena_type(field.dataType)) for field in spec.schema.fields
    ]
    assert parsed.partition == [("day", spec.time_column), ("identity", "symbol")]
    assert parsed.location == f"s3://${{BUCKET}}/warehouse/crypto_pulse.db/{name}"
    assert parsed.tblproperties == {"table_type": "ICEBERG", "format": "parquet"}
    assert not parsed.external
    assert not parsed.stored_as


@pytest.mark.parametrize("path", ddl_files(), ids=lambda p: p.name)
def test_ddl_is_athena_iceberg_shape_not_hive_external(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    upper = " ".join(text.upper().split())
    assert upper.startswith("CREATE TABLE CRYPTO_PULSE.")
    assert "EXTERNAL" not in upper
    assert "STORED AS" not in upper
    assert upper.count(";") == 0  # one statement, sent to Athena as it is
    assert "--" not in text


def test_the_checker_notices_the_forbidden_hive_shape() -> None:
    """The assertions above can fail: the parse sees EXTERNAL, STORED AS and a bad partition."""
    sql = (
        "CREATE EXTERNAL TABLE crypto_pulse.x (`symbol` string, `at` timestamp) "
        "PARTITIONED BY (`symbol`) STORED AS ICEBERG LOCATION 's3://b/x'"
    )
    parsed = parse_ddl(sql)
    assert parsed.external
    assert parsed.stored_as
    assert parsed.partition == [("identity", "symbol")]


def test_a_drifted_column_is_seen_by_the_parse() -> None:
    spec = TABLES["spreads"]
    drifted = spec.ddl().replace("`spread_pct` double", "`spread_pct` string")
    parsed = parse_ddl(drifted)
    expected = [(f.name, expected_athena_type(f.dataType)) for f in spec.schema.fields]
    assert parsed.columns != expected
    assert ("spread_pct", "string") in parsed.columns


def test_timestamp_columns_are_backquoted_because_timestamp_is_reserved_in_athena_ddl() -> None:
    ddl = TABLES["raw_trades"].ddl()
    assert "  `timestamp` timestamp,\n" in ddl
    assert "PARTITIONED BY (day(`timestamp`), `symbol`)" in ddl


def test_cli_writes_the_committed_files_and_substitutes_a_bucket(tmp_path: Path) -> None:
    placeholder = tmp_path / "placeholder"
    assert tables.main(["ddl", "--out", str(placeholder)]) == 0
    for path in ddl_files():
        assert (placeholder / path.name).read_text(encoding="utf-8") == path.read_text(
            encoding="utf-8"
        )
    concrete = tmp_path / "concrete"
    assert tables.main(["ddl", "--bucket", "cp-lake", "--out", str(concrete)]) == 0
    parsed = parse_ddl((concrete / "whale_trades.sql").read_text(encoding="utf-8"))
    assert parsed.location == "s3://cp-lake/warehouse/crypto_pulse.db/whale_trades"
    assert sorted(p.stem for p in concrete.glob("*.sql")) == sorted(TABLES)
