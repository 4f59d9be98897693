"""The Iceberg adapter on a local SQLite catalog under tmp_path: catalog choice, provisioning,
exactly-once appends (SPEC §6.4, §10)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import NestedField, StringType, TimestampType, TimestamptzType
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from devstack import provision
from spark_jobs.common import iceberg, schemas
from spark_jobs.common.iceberg import (
    BATCH_ID_PROPERTY,
    WRITER_PROPERTY,
    BatchDataError,
    BatchOrderError,
    CatalogNotConfiguredError,
    IcebergSink,
    TableSchemaMismatchError,
    ensure_tables,
    load_catalog,
)
from spark_jobs.common.settings import JobSettings, TableSettings
from spark_jobs.common.tables import TABLES, arrow_schema, iceberg_schema

NS = "crypto_pulse"
DAY = datetime(2024, 3, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_pyiceberg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No .pyiceberg.yaml and no PYICEBERG_* variables from the machine leak into a test."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.upper().startswith("PYICEBERG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PYICEBERG_HOME", str(home))
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def settings(job_settings: JobSettings, tmp_path: Path) -> JobSettings:
    tables = TableSettings(catalog="local", namespace=NS, warehouse=str(tmp_path / "warehouse"))
    return job_settings.model_copy(update={"tables": tables})


@pytest.fixture
def catalog(settings: JobSettings) -> Catalog:
    catalog = load_catalog(settings)
    ensure_tables(catalog, NS)
    return catalog


def trade(
    n: int,
    symbol: str = "BTC-USDT",
    at: datetime = DAY + timedelta(hours=12, microseconds=123_456),
    exchange: str = "binance",
) -> dict[str, Any]:
    return {
        "event_id": f"{exchange}:{symbol}:{n}",
        "exchange": exchange,
        "symbol": symbol,
        "price": 100.0 + n,
        "quantity": 0.5,
        "quote_volume": (100.0 + n) * 0.5,
        "side": "buy" if n % 2 else "sell",
        "timestamp": at + timedelta(microseconds=n),
        "ingestion_timestamp": at + timedelta(milliseconds=5, microseconds=n),
    }


def trades_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=arrow_schema(schemas.UNIFIED_TRADE))


def rows_of(table: Table) -> list[dict[str, Any]]:
    table.refresh()
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: [str(v) for v in r.values()])


def markers(table: Table) -> list[tuple[str | None, str | None]]:
    table.refresh()
    return [
        (s.summary.get(WRITER_PROPERTY), s.summary.get(BATCH_ID_PROPERTY))
        for s in table.snapshots()
        if s.summary is not None
    ]


# --- The catalog ---------------------------------------------------------------------------------


def test_default_catalog_is_sqlite_in_the_warehouse_folder(settings: JobSettings) -> None:
    catalog = load_catalog(settings)
    warehouse = Path(settings.tables.warehouse)
    assert isinstance(catalog, SqlCatalog)
    assert catalog.name == "local"
    assert catalog.properties["uri"] == f"sqlite:///{warehouse / 'catalog.db'}"
    assert catalog.properties["warehouse"] == warehouse.as_uri()
    ensure_tables(catalog, NS)
    assert (warehouse / "catalog.db").is_file()
    assert (warehouse / NS / "raw_trades" / "metadata").is_dir()


def test_a_catalog_configured_in_the_environment_is_used(
    settings: JobSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyiceberg's variable parser spells this catalog `crypto-pulse`; we accept both spellings.
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("PYICEBERG_CATALOG__CRYPTO_PULSE__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__CRYPTO_PULSE__URI", f"sqlite:///{other}/c.db")
    monkeypatch.setenv("PYICEBERG_CATALOG__CRYPTO_PULSE__WAREHOUSE", other.as_uri())
    configured = settings.model_copy(
        update={"tables": settings.tables.model_copy(update={"catalog": "crypto_pulse"})}
    )
    catalog = load_catalog(configured)
    assert isinstance(catalog, SqlCatalog)
    assert catalog.properties["uri"] == f"sqlite:///{other}/c.db"
    ensure_tables(catalog, NS)
    assert (other / "c.db").is_file()
    assert not Path(settings.tables.warehouse).exists()  # the default was not used


def test_a_catalog_configured_in_pyiceberg_yaml_is_used(
    settings: JobSettings, tmp_path: Path, no_pyiceberg_config: Path
) -> None:
    other = tmp_path / "yaml"
    (no_pyiceberg_config / ".pyiceberg.yaml").write_text(
        "catalog:\n"
        "  local:\n"
        "    type: sql\n"
        f"    uri: sqlite:///{other}.db\n"
        f"    warehouse: {tmp_path.as_uri()}/yaml\n",
        encoding="utf-8",
    )
    catalog = load_catalog(settings)
    assert catalog.properties["uri"] == f"sqlite:///{other}.db"


def test_an_s3_warehouse_without_a_configured_catalog_fails_clearly(
    settings: JobSettings,
) -> None:
    remote = settings.model_copy(
        update={"tables": settings.tables.model_copy(update={"warehouse": "s3://lake/warehouse"})}
    )
    with pytest.raises(CatalogNotConfiguredError, match="PYICEBERG_CATALOG__LOCAL__TYPE"):
        load_catalog(remote)


# --- Provisioning --------------------------------------------------------------------------------


def test_ensure_tables_twice_is_harmless(settings: JobSettings) -> None:
    catalog = load_catalog(settings)
    first = ensure_tables(catalog, NS)
    second = ensure_tables(load_catalog(settings), NS)
    assert list(first) == list(second) == list(TABLES)
    for name in TABLES:
        assert first[name].metadata.table_uuid == second[name].metadata.table_uuid
        assert first[name].metadata_location == second[name].metadata_location  # no new commit
    assert sorted(catalog.list_tables(NS)) == sorted((NS, name) for name in TABLES)


def test_created_tables_carry_the_declared_schema_and_partitioning(catalog: Catalog) -> None:
    for name, spec in TABLES.items():
        table = catalog.load_table((NS, name))
        schema = table.schema()
        assert [(f.name, f.required) for f in schema.fields] == [
            (f.name, not f.nullable) for f in spec.schema.fields
        ]
        assert isinstance(schema.find_field(spec.time_column).field_type, TimestamptzType)
        assert [
            (str(f.transform), schema.find_column_name(f.source_id)) for f in table.spec().fields
        ] == [("day", spec.time_column), ("identity", "symbol")]


def test_an_existing_table_with_another_schema_fails_clearly(settings: JobSettings) -> None:
    catalog = load_catalog(settings)
    catalog.create_namespace(NS)
    spec = TABLES["spreads"]
    fields = spec.schema.fields
    wrong = [*fields[:8], T.StructField("spread_pct", T.StringType(), False), *fields[9:]]
    schema = iceberg_schema(arrow_schema(T.StructType(wrong)))
    catalog.create_table((NS, "spreads"), schema=schema, partition_spec=spec.partition_spec())
    with pytest.raises(TableSchemaMismatchError) as failure:
        ensure_tables(catalog, NS)
    message = str(failure.value)
    assert "crypto_pulse.spreads" in message
    assert "column 9: table has `spread_pct string required`" in message
    assert "code expects `spread_pct double required`" in message


def test_an_existing_table_partitioned_otherwise_fails_clearly(settings: JobSettings) -> None:
    catalog = load_catalog(settings)
    catalog.create_namespace(NS)
    catalog.create_table((NS, "alerts"), schema=TABLES["alerts"].iceberg_schema())
    with pytest.raises(TableSchemaMismatchError, match=r"partitioned by none, code expects "):
        ensure_tables(catalog, NS)


def athena_created(name: str) -> tuple[Schema, PartitionSpec]:
    """The table as Athena's DDL creates it: every column optional, timestamps without zone."""
    spec = TABLES[name]
    fields = [
        NestedField(
            f.field_id,
            f.name,
            TimestampType() if isinstance(f.field_type, TimestamptzType) else f.field_type,
            required=False,
        )
        for f in spec.iceberg_schema().fields
    ]
    schema = Schema(*fields)
    partition = PartitionSpec(
        PartitionField(schema.find_field(spec.time_column).field_id, 1000, DayTransform(), "d"),
        PartitionField(schema.find_field("symbol").field_id, 1001, IdentityTransform(), "symbol"),
    )
    return schema, partition


def test_a_table_created_by_the_athena_ddl_is_accepted_and_written(
    settings: JobSettings,
) -> None:
    catalog = load_catalog(settings)
    catalog.create_namespace(NS)
    schema, partition = athena_created("raw_trades")
    catalog.create_table((NS, "raw_trades"), schema=schema, partition_spec=partition)
    ensure_tables(catalog, NS)
    sink = IcebergSink(catalog, "raw_trades", "archiver")
    assert sink.append(trades_table([trade(1)]), 0)
    (row,) = rows_of(sink.table)
    assert row["timestamp"] == trade(1)["timestamp"].replace(tzinfo=None)  # UTC, no zone label


def test_columns_added_by_schema_evolution_are_accepted_and_written_null(
    catalog: Catalog,
) -> None:
    table = catalog.load_table((NS, "raw_trades"))
    with table.update_schema() as update:
        update.add_column("venue_note", StringType())
    ensure_tables(catalog, NS)
    sink = IcebergSink(catalog, f"{NS}.raw_trades", "archiver")
    assert sink.append(trades_table([trade(1)]), 0)
    assert [r["venue_note"] for r in rows_of(sink.table)] == [None]


def test_provision_ensure_iceberg_twice_and_its_cli(
    settings: JobSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = [f"{NS}.{name}" for name in TABLES]
    assert provision.ensure_iceberg(settings) == expected
    assert provision.ensure_iceberg(settings) == expected
    monkeypatch.setenv("CRYPTO_PULSE_TABLES__CATALOG", settings.tables.catalog)
    monkeypatch.setenv("CRYPTO_PULSE_TABLES__WAREHOUSE", settings.tables.warehouse)
    assert provision.main(["--tables"]) == 0
    assert json.loads(capsys.readouterr().out) == {"tables": expected}


def test_settings_buckets_are_the_s3_paths_of_the_settings(settings: JobSettings) -> None:
    assert provision.settings_buckets(settings) == []
    on_aws = settings.model_copy(
        update={
            "raw_zone": "s3://cp-data/raw",
            "streaming": settings.streaming.model_copy(
                update={"checkpoint_root": "s3://cp-data/checkpoints"}
            ),
            "tables": settings.tables.model_copy(update={"warehouse": "s3://cp-lake/warehouse"}),
        }
    )
    assert provision.settings_buckets(on_aws) == ["cp-data", "cp-lake"]


def test_ensure_bucket_twice_is_harmless(aws_env: dict[str, str]) -> None:
    s3 = provision.s3()
    assert provision.ensure_bucket(s3, "cp-lake-test") == "cp-lake-test"
    s3.put_object(Bucket="cp-lake-test", Key="kept", Body=b"x")
    assert provision.ensure_bucket(s3, "cp-lake-test") == "cp-lake-test"
    assert s3.get_object(Bucket="cp-lake-test", Key="kept")["Body"].read() == b"x"


def test_glue_and_s3_by_configuration_alone(
    settings: JobSettings, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS shape on the local endpoint: a Glue catalog over an S3 warehouse, chosen by
    pyiceberg variables only; tables land where the Athena DDL's LOCATION says."""
    suffix = uuid.uuid4().hex[:8]
    bucket, namespace = f"cp-lake-{suffix}", f"crypto_pulse_{suffix}"
    monkeypatch.setenv("PYICEBERG_CATALOG__GLUE_TEST__TYPE", "glue")
    monkeypatch.setenv("PYICEBERG_CATALOG__GLUE_TEST__WAREHOUSE", f"s3://{bucket}/warehouse")
    on_aws = settings.model_copy(
        update={"tables": TableSettings(catalog="glue_test", namespace=namespace)}
    )
    provision.ensure_bucket(provision.s3(), bucket)
    expected = [f"{namespace}.{name}" for name in TABLES]
    assert provision.ensure_iceberg(on_aws) == expected
    assert provision.ensure_iceberg(on_aws) == expected
    catalog = load_catalog(on_aws)
    assert type(catalog).__name__ == "GlueCatalog"
    sink = IcebergSink(catalog, "raw_trades", "trade_archiver", namespace=namespace)
    assert sink.table.location() == TABLES["raw_trades"].location(bucket, namespace)
    batch = trades_table([trade(1), trade(2, "ETH-USDT")])
    assert sink.append(batch, 0) is True
    assert sink.append(batch, 0) is False
    assert len(rows_of(sink.table)) == 2


# --- The sink: exactly once ----------------------------------------------------------------------


def test_the_same_batch_twice_is_one_set_of_rows(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "raw_trades", "trade_archiver")
    batch = trades_table([trade(1), trade(2, "ETH-USDT")])
    assert sink.append(batch, 7) is True
    assert sink.append(batch, 7) is False
    assert len(rows_of(sink.table)) == 2
    assert markers(sink.table) == [("trade_archiver", "7")]


def test_a_replay_after_a_restart_is_skipped(settings: JobSettings, catalog: Catalog) -> None:
    """A job killed after its commit restarts with a new process, catalog and sink."""
    first, second = trades_table([trade(1)]), trades_table([trade(2)])
    assert IcebergSink(catalog, "raw_trades", "trade_archiver").append(first, 0)
    assert IcebergSink(catalog, "raw_trades", "trade_archiver").append(second, 1)
    restarted = IcebergSink(load_catalog(settings), "raw_trades", "trade_archiver")
    assert restarted.is_committed(1)
    assert restarted.append(second, 1) is False
    assert restarted.append(trades_table([trade(3)]), 2) is True
    assert [r["event_id"] for r in rows_of(restarted.table)] == [
        "binance:BTC-USDT:1",
        "binance:BTC-USDT:2",
        "binance:BTC-USDT:3",
    ]


def test_another_writer_with_the_same_batch_id_is_not_skipped(catalog: Catalog) -> None:
    whale = IcebergSink(catalog, "alerts", "whale_detector")
    volume = IcebergSink(catalog, "alerts", "volume_anomaly")

    def alert(alert_id: str) -> pa.Table:
        row = {
            "alert_id": alert_id,
            "alert_type": "WHALE_TRADE",
            "symbol": "BTC-USDT",
            "exchange": "binance",
            "event_time": DAY,
            "detected_at": DAY + timedelta(seconds=1),
            "metric": 150_000.0,
            "threshold": 100_000.0,
            "details": "{}",
        }
        return pa.Table.from_pylist([row], schema=arrow_schema(schemas.ALERT))

    assert whale.append(alert("whale:1"), 3)
    assert volume.append(alert("volume_anomaly:1"), 3)
    assert whale.append(alert("whale:1"), 3) is False
    assert volume.append(alert("volume_anomaly:1"), 3) is False
    assert [r["alert_id"] for r in rows_of(whale.table)] == ["volume_anomaly:1", "whale:1"]
    assert markers(whale.table) == [("whale_detector", "3"), ("volume_anomaly", "3")]


def test_interleaved_writers_each_find_their_own_latest_batch(catalog: Catalog) -> None:
    a = IcebergSink(catalog, "raw_trades", "a")
    b = IcebergSink(catalog, "raw_trades", "b")
    assert a.append(trades_table([trade(1)]), 0)
    assert a.append(trades_table([trade(2)]), 1)
    for batch_id in range(4):
        assert b.append(trades_table([trade(10 + batch_id)]), batch_id)
    assert a.append(trades_table([trade(2)]), 1) is False  # its latest, behind b's commits
    assert a.append(trades_table([trade(1)]), 0) is False  # an older one, found further back
    assert a.append(trades_table([trade(3)]), 2) is True
    assert len(rows_of(a.table)) == 7


def test_an_older_uncommitted_batch_with_rows_is_rejected(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "raw_trades", "archiver")
    assert sink.append(trades_table([trade(1)]), 5)
    assert sink.append(trades_table([]), 3) is False  # was empty, is empty: nothing to do
    with pytest.raises(BatchOrderError, match=r"already committed batch 5 .* batch 3 is older"):
        sink.append(trades_table([trade(2)]), 3)
    assert len(rows_of(sink.table)) == 1


def test_an_empty_batch_commits_nothing(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "raw_trades", "archiver")
    assert sink.append(trades_table([]), 0) is False
    sink.table.refresh()
    assert sink.table.current_snapshot() is None
    assert sink.append(trades_table([trade(1)]), 1) is True
    assert markers(sink.table) == [("archiver", "1")]


def test_snapshot_summary_carries_writer_batch_and_counts(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "raw_trades", "trade_archiver")
    sink.append(trades_table([trade(1), trade(2)]), 42)
    sink.table.refresh()
    summary = sink.table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None
    assert summary[WRITER_PROPERTY] == "trade_archiver"
    assert summary[BATCH_ID_PROPERTY] == "42"
    assert summary["added-records"] == "2"
    assert iceberg.committed_rows(sink.table, "trade_archiver") == {42: 2}


def test_partition_layout_is_day_then_symbol_in_the_files(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "raw_trades", "archiver")
    next_day = DAY + timedelta(days=1, hours=1)
    sink.append(
        trades_table(
            [trade(1), trade(2, "ETH-USDT"), trade(3, at=next_day), trade(4, "ETH-USDT", next_day)]
        ),
        0,
    )
    files = sink.table.inspect.files()
    folders = sorted(
        path.split("/data/", 1)[1].rsplit("/", 1)[0]
        for path in files.column("file_path").to_pylist()
    )
    assert folders == [
        "timestamp_day=2024-03-09/symbol=BTC-USDT",
        "timestamp_day=2024-03-09/symbol=ETH-USDT",
        "timestamp_day=2024-03-10/symbol=BTC-USDT",
        "timestamp_day=2024-03-10/symbol=ETH-USDT",
    ]


def test_a_batch_that_does_not_fit_the_table_fails_clearly(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "volume_aggregates", "volume_anomaly")
    nullable = pa.schema([f.with_nullable(True) for f in arrow_schema(schemas.WINDOWED_AGGREGATE)])
    row = {
        "window_start": DAY,
        "window_end": DAY + timedelta(minutes=1),
        "symbol": "BTC-USDT",
        "exchange": None,
        "trade_count": 3,
        "total_volume": 1.5,
        "total_quote_volume": 150.0,
        "vwap": 100.0,
        "min_price": 99.0,
        "max_price": 101.0,
    }
    with pytest.raises(BatchDataError, match=r"nulls in required columns: exchange \(1 nulls\)"):
        sink.append(pa.Table.from_pylist([row], schema=nullable), 0)
    extra = pa.Table.from_pylist([{**row, "exchange": "binance", "oops": 1}])
    with pytest.raises(BatchDataError, match=r"columns not in the table: \['oops'\]"):
        sink.append(extra, 0)
    # Nullable columns without nulls (what Spark aggregations often give) are fine.
    assert sink.append(pa.Table.from_pylist([{**row, "exchange": "binance"}], schema=nullable), 0)


def test_sub_microsecond_timestamps_are_refused_not_truncated(catalog: Catalog) -> None:
    sink = IcebergSink(catalog, "raw_trades", "archiver")
    batch = trades_table([trade(1)])
    position = batch.schema.get_field_index("timestamp")
    nanos = pa.array([1_710_000_000_123_456_789], pa.timestamp("ns", tz="UTC"))
    batch = batch.set_column(position, "timestamp", nanos)
    with pytest.raises(pa.ArrowInvalid, match="would lose data"):
        sink.append(batch, 0)


def test_a_missing_table_names_the_fix(settings: JobSettings) -> None:
    catalog = load_catalog(settings)
    with pytest.raises(iceberg.IcebergError, match=r"crypto_pulse.raw_trades does not exist"):
        IcebergSink(catalog, "raw_trades", "archiver")


# --- The sink with Spark -------------------------------------------------------------------------


def test_a_spark_dataframe_appends_with_exact_microsecond_timestamps(
    spark: SparkSession, catalog: Catalog
) -> None:
    rows = [trade(1), trade(2, "ETH-USDT", exchange="coinbase"), trade(3, at=DAY)]
    df = spark.createDataFrame([tuple(r.values()) for r in rows], schemas.UNIFIED_TRADE)
    sink = IcebergSink(catalog, "raw_trades", "trade_archiver")
    assert sink.append(df, 0) is True
    assert sink.append(df, 0) is False
    assert rows_of(sink.table) == sorted(rows, key=lambda r: r["event_id"])
    assert rows_of(sink.table)[0]["timestamp"].microsecond == 123_457


def test_a_spark_aggregate_with_nullable_columns_fits_a_required_schema(
    spark: SparkSession, catalog: Catalog
) -> None:
    rows = [trade(n, "BTC-USDT") for n in range(3)]
    trades = spark.createDataFrame([tuple(r.values()) for r in rows], schemas.UNIFIED_TRADE)
    trades.createOrReplaceTempView("iceberg_test_trades")
    aggregates = spark.sql(
        """
        SELECT window.start AS window_start, window.end AS window_end, symbol, exchange,
               count(*) AS trade_count, sum(quantity) AS total_volume,
               sum(quote_volume) AS total_quote_volume,
               sum(price * quantity) / sum(quantity) AS vwap,
               min(price) AS min_price, max(price) AS max_price
        FROM iceberg_test_trades
        GROUP BY window(timestamp, '60 seconds'), symbol, exchange
        """
    )
    assert aggregates.schema["symbol"].nullable  # unlike the table's column
    sink = IcebergSink(catalog, "volume_aggregates", "volume_anomaly")
    assert sink.append(aggregates, 0) is True
    (row,) = rows_of(sink.table)
    assert row["trade_count"] == 3
    assert row["window_start"] == DAY + timedelta(hours=12)
    assert row["vwap"] == pytest.approx(101.0)
