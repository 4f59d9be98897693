"""The saved Athena queries (`ddl/queries/`), run locally on a small hand-made warehouse: Iceberg
tables on a SQLite catalog under tmp_path and DLQ files in a tmp raw zone (SPEC §7). No Spark."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
import sqlglot
from pyiceberg.catalog import Catalog

from spark_jobs import queries
from spark_jobs.common import quality, schemas
from spark_jobs.common.dlq import DlqWriter
from spark_jobs.common.iceberg import IcebergSink, ensure_tables, load_catalog
from spark_jobs.common.settings import JobSettings, TableSettings
from spark_jobs.common.tables import arrow_schema

NS = "crypto_pulse"
DAY = datetime(2026, 1, 1, tzinfo=UTC)  # the demo's market day
TODAY = datetime.now(UTC).date()
SAVED = [
    "alert_counts_by_type",
    "anomalies_by_symbol_hour",
    "dq_failure_rates",
    "latest_whales",
    "top_whales",
    "widest_spreads",
]


def naive(at: datetime) -> datetime:
    """What a query returns for a table timestamp: the UTC value without a zone."""
    return at.astimezone(UTC).replace(tzinfo=None)


# --- Rows ----------------------------------------------------------------------------------------


def whale(
    n: int, symbol: str, exchange: str, at: datetime, quote_volume: float, side: str = "buy"
) -> dict[str, Any]:
    base, quote = symbol.split("-")
    price = 100_000.0 if base == "BTC" else 4_000.0
    return {
        "event_id": f"{exchange}:{symbol}:{n}",
        "exchange": exchange,
        "symbol": symbol,
        "price": price,
        "quantity": quote_volume / price,
        "quote_volume": quote_volume,
        "side": side,
        "timestamp": at,
        "ingestion_timestamp": at + timedelta(milliseconds=40),
        "alert_id": f"whale:{exchange}:{symbol}:{n}",
        "base_asset": base,
        "quote_asset": quote,
        "size_tier": "mega" if quote_volume > 1_000_000 else "large",
        "threshold": 100_000.0,
        "detected_at": at + timedelta(seconds=2),
    }


WHALES = [
    whale(1, "BTC-USDT", "binance", DAY + timedelta(hours=10), 150_000.0),
    whale(2, "ETH-USDT", "coinbase", DAY + timedelta(hours=12, minutes=30), 400_000.0, "sell"),
    whale(3, "BTC-USDT", "coinbase", DAY + timedelta(hours=23, seconds=3599.5), 1_200_000.0),
    # A day before the newest whale: out of latest_whales, the largest for top_whales.
    whale(4, "BTC-USDT", "binance", DAY - timedelta(hours=14), 2_000_000.0, "sell"),
    # The same instant as whale 2: ties are ordered by alert_id.
    whale(5, "ETH-USDT", "binance", DAY + timedelta(hours=12, minutes=30), 250_000.0),
]


def anomaly(
    n: int, symbol: str, exchange: str, start: datetime, z_score: float, quote_volume: float
) -> dict[str, Any]:
    return {
        "alert_id": f"volume_anomaly:{exchange}:{symbol}:{n}",
        "symbol": symbol,
        "exchange": exchange,
        "window_start": start,
        "window_end": start + timedelta(minutes=1),
        "total_quote_volume": quote_volume,
        "baseline_mean": quote_volume / 10,
        "baseline_std": quote_volume / 40,
        "baseline_windows": 60,
        "z_score": z_score,
        "threshold": 2.5,
        "detected_at": start + timedelta(minutes=3),
    }


ANOMALIES = [
    anomaly(1, "BTC-USDT", "binance", DAY + timedelta(hours=10, minutes=5), 3.0, 500_000.0),
    anomaly(2, "BTC-USDT", "coinbase", DAY + timedelta(hours=10, minutes=5), 4.5, 300_000.0),
    anomaly(3, "BTC-USDT", "binance", DAY + timedelta(hours=10, minutes=42), 2.7, 200_000.0),
    anomaly(4, "ETH-USDT", "binance", DAY + timedelta(hours=10, minutes=30), 5.0, 100_000.0),
    anomaly(5, "ETH-USDT", "binance", DAY + timedelta(hours=11), 2.6, 50_000.0),
    anomaly(6, "BTC-USDT", "binance", DAY + timedelta(hours=23), 3.3, 10_000.0),
    # Twelve days before the newest window: out of the 7 days.
    anomaly(7, "ETH-USDT", "coinbase", DAY - timedelta(days=12), 9.0, 900_000.0),
]


def spread(
    symbol: str, start: datetime, pct: float, high: str = "coinbase", low: str = "binance"
) -> dict[str, Any]:
    min_vwap = 100_000.0 if symbol == "BTC-USDT" else 4_000.0
    return {
        "window_start": start,
        "window_end": start + timedelta(seconds=30),
        "symbol": symbol,
        "exchange_count": 2,
        "max_vwap": min_vwap * (1 + pct / 100),
        "min_vwap": min_vwap,
        "high_exchange": high,
        "low_exchange": low,
        "spread_pct": pct,
        "is_alert": pct > 0.5,
    }


SPREADS = [
    spread("BTC-USDT", DAY + timedelta(hours=12), 0.8),
    spread("ETH-USDT", DAY + timedelta(hours=12), 0.8, "binance", "coinbase"),
    spread("BTC-USDT", DAY + timedelta(hours=12, seconds=30), 0.1),
    spread("ETH-USDT", DAY + timedelta(hours=23), 0.3),
    # Two days before the newest window: out of the last day, however wide.
    spread("BTC-USDT", DAY - timedelta(days=1, hours=12), 5.0),
]


def alert(
    alert_id: str, kind: str, symbol: str, exchange: str | None, at: datetime, metric: float
) -> dict[str, Any]:
    thresholds = {"VOLUME_SPIKE": 2.5, "WHALE_TRADE": 100_000.0, "WIDE_SPREAD": 0.5}
    return {
        "alert_id": alert_id,
        "alert_type": kind,
        "symbol": symbol,
        "exchange": exchange,
        "event_time": at,
        "detected_at": at + timedelta(seconds=5),
        "metric": metric,
        "threshold": thresholds[kind],
        "details": "{}",
    }


ALERTS = [
    alert("va:1", "VOLUME_SPIKE", "BTC-USDT", "binance", DAY + timedelta(hours=10, minutes=5), 3.0),
    alert(
        "va:2", "VOLUME_SPIKE", "BTC-USDT", "coinbase", DAY + timedelta(hours=10, minutes=5), 4.5
    ),
    alert(
        "va:4", "VOLUME_SPIKE", "ETH-USDT", "binance", DAY + timedelta(hours=10, minutes=30), 5.0
    ),
    alert("w:1", "WHALE_TRADE", "BTC-USDT", "binance", WHALES[0]["timestamp"], 150_000.0),
    alert("w:3", "WHALE_TRADE", "BTC-USDT", "coinbase", WHALES[2]["timestamp"], 1_200_000.0),
    alert("s:1", "WIDE_SPREAD", "BTC-USDT", None, DAY + timedelta(hours=12), 0.8),
    alert("s:2", "WIDE_SPREAD", "ETH-USDT", None, DAY + timedelta(hours=12), 0.8),
    # Twelve days before the newest alert: out of the 7 days.
    alert("w:old", "WHALE_TRADE", "ETH-USDT", "binance", DAY - timedelta(days=12), 9e6),
]


def invalid(raw: str, *failed: str, event_id: str | None = None) -> dict[str, Any]:
    """A row of the quality checker's invalid output."""
    return {"raw": raw, "event_id": event_id, "failed_checks": list(failed), "reason": failed[0]}


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


# (job, batch id, processing day, invalid rows): the DLQ's `dt` is the processing date.
DLQ_BATCHES = [
    (
        "trade_archiver",
        0,
        TODAY,
        [
            invalid("not json", "parse_json"),
            invalid("{", "parse_json"),
            invalid("[1]", "parse_json"),
            invalid('{"price": -1}', "validity_price_positive", event_id="binance:BTC-USDT:9"),
        ],
    ),
    (
        "trade_archiver",
        1,
        TODAY - timedelta(days=2),
        [
            invalid('{"symbol": null}', "completeness_symbol", "validity_symbol_allowed"),
            invalid("", "parse_json"),
        ],
    ),
    ("whale_detector", 0, TODAY, [invalid("x", "parse_json"), invalid("y", "parse_json")]),
    # A month ago: out of the 7 days.
    (
        "trade_archiver",
        2,
        TODAY - timedelta(days=30),
        [invalid('{"exchange": "kraken"}', "validity_exchange_allowed")] * 5,
    ),
]


# --- The warehouse -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def isolated_pyiceberg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No .pyiceberg.yaml and no PYICEBERG_* variables from the machine leak into the module."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("PYICEBERG_"):
                patch.delenv(name)
        patch.setenv("HOME", str(home))
        patch.setenv("PYICEBERG_HOME", str(home))
        yield


@pytest.fixture(scope="module")
def settings(
    job_settings: JobSettings, tmp_path_factory: pytest.TempPathFactory, isolated_pyiceberg: None
) -> JobSettings:
    root = tmp_path_factory.mktemp("queries")
    tables = TableSettings(catalog="local", namespace=NS, warehouse=str(root / "warehouse"))
    return job_settings.model_copy(update={"tables": tables, "raw_zone": str(root / "raw")})


def append(catalog: Catalog, table: str, schema: Any, rows: list[dict[str, Any]]) -> None:
    data = pa.Table.from_pylist(rows, schema=arrow_schema(schema))
    assert IcebergSink(catalog, table, "test_queries").append(data, 0)


@pytest.fixture(scope="module")
def warehouse(settings: JobSettings) -> Catalog:
    catalog = load_catalog(settings)
    ensure_tables(catalog, NS)
    append(catalog, "whale_trades", schemas.WHALE_ALERT, WHALES)
    append(catalog, "anomalies", schemas.ANOMALY_ALERT, ANOMALIES)
    append(catalog, "spreads", schemas.SPREAD_RECORD, SPREADS)
    append(catalog, "alerts", schemas.ALERT, ALERTS)
    writer = DlqWriter(settings)
    for job, batch_id, day, rows in DLQ_BATCHES:
        writer.write(rows, job, batch_id, now=at_noon(day))
    return catalog


# --- The files -----------------------------------------------------------------------------------


def test_the_saved_queries_are_listed_by_name_and_the_dlq_ddl_is_not_one() -> None:
    assert list(queries.saved_queries()) == SAVED
    assert (queries.QUERIES_DIR / queries.DLQ_DDL_FILE).is_file()
    for name in SAVED:
        assert queries.description(queries.query_sql(name)), f"{name} says what it returns"


@pytest.mark.parametrize("path", sorted(queries.QUERIES_DIR.glob("*.sql")), ids=lambda p: p.name)
def test_every_file_is_one_valid_athena_statement(path: Path) -> None:
    statements = sqlglot.parse(path.read_text(encoding="utf-8"), read="athena")
    assert len(statements) == 1
    statement = statements[0]
    if path.name.startswith("_"):
        assert isinstance(statement, sqlglot.exp.Create)
        assert statement.this.sql(dialect="athena").startswith("crypto_pulse.dlq")
    else:
        assert isinstance(statement, sqlglot.exp.Query)
        assert queries.tables_read(statement)  # reads crypto_pulse.<table>, nothing else
        assert queries.duckdb_sql(statement)


def test_the_tables_each_query_reads() -> None:
    read = {name: queries.tables_read(queries.parse(queries.query_sql(name))) for name in SAVED}
    assert read == {
        "alert_counts_by_type": ["alerts"],
        "anomalies_by_symbol_hour": ["anomalies"],
        "dq_failure_rates": ["dlq"],
        "latest_whales": ["whale_trades"],
        "top_whales": ["whale_trades"],
        "widest_spreads": ["spreads"],
    }


def test_a_table_outside_the_database_is_refused() -> None:
    with pytest.raises(queries.QueryError, match=r"other\.trades is not in crypto_pulse"):
        queries.tables_read(queries.parse("SELECT * FROM other.trades"))
    with pytest.raises(queries.QueryError, match="one SELECT, got 2"):
        queries.parse("SELECT 1; SELECT 2")


def test_the_dlq_table_enumerates_every_error_check_as_a_reason(job_settings: JobSettings) -> None:
    ddl = (queries.QUERIES_DIR / queries.DLQ_DDL_FILE).read_text(encoding="utf-8")
    errors = [c.name for c in quality.default_checks(job_settings) if c.severity == "ERROR"]
    assert queries.dlq_reasons(ddl) == [*errors, "unknown"]  # `unknown`: dlq.dlq_record's default
    create = sqlglot.parse_one(ddl, read="athena")
    columns = [c.name for c in create.find_all(sqlglot.exp.ColumnDef)]
    assert columns == [f.name for f in queries.DLQ_ARROW_SCHEMA]
    assert set(columns) == {*schemas.DLQ_RECORD.fieldNames(), "dt"}


def test_the_dlq_ddl_substitutes_the_raw_zone_only() -> None:
    ddl = queries.dlq_ddl("s3://cp-data/raw/")
    assert "LOCATION 's3://cp-data/raw/dlq/'" in ddl
    assert "'storage.location.template'='s3://cp-data/raw/dlq/${reason}/dt=${dt}/'" in ddl
    assert "${RAW_ZONE}" not in ddl
    with pytest.raises(queries.QueryError, match="needs an s3:// raw zone"):
        queries.dlq_ddl("var/raw")


def test_limit_caps_the_query_but_never_raises_its_own() -> None:
    query = queries.parse("SELECT a FROM crypto_pulse.t ORDER BY a LIMIT 50")
    assert (
        queries.duckdb_sql(queries.capped(query, 5))
        == "SELECT a FROM crypto_pulse.t ORDER BY a LIMIT 5"
    )
    assert queries.duckdb_sql(queries.capped(query, 500)).endswith("LIMIT 50")
    unlimited = queries.parse("SELECT a FROM crypto_pulse.t")
    assert queries.duckdb_sql(queries.capped(unlimited, 7)).endswith("LIMIT 7")


# --- The queries on the warehouse ----------------------------------------------------------------


def test_latest_whales(settings: JobSettings, warehouse: Catalog) -> None:
    rows = queries.run_query("latest_whales", settings, catalog=warehouse)
    assert [r["alert_id"] for r in rows] == [
        "whale:coinbase:BTC-USDT:3",
        "whale:binance:ETH-USDT:5",
        "whale:coinbase:ETH-USDT:2",
        "whale:binance:BTC-USDT:1",
    ]
    assert rows[0] == {
        "timestamp": datetime(2026, 1, 1, 23, 59, 59, 500_000),
        "symbol": "BTC-USDT",
        "exchange": "coinbase",
        "side": "buy",
        "price": 100_000.0,
        "quantity": 12.0,
        "quote_volume": 1_200_000.0,
        "size_tier": "mega",
        "threshold": 100_000.0,
        "alert_id": "whale:coinbase:BTC-USDT:3",
    }
    assert [r["timestamp"] for r in rows] == [naive(WHALES[i]["timestamp"]) for i in (2, 4, 1, 0)]


def test_top_whales(settings: JobSettings, warehouse: Catalog) -> None:
    rows = queries.run_query("top_whales", settings, catalog=warehouse)
    assert [(r["alert_id"], r["quote_volume"]) for r in rows] == [
        ("whale:binance:BTC-USDT:4", 2_000_000.0),
        ("whale:coinbase:BTC-USDT:3", 1_200_000.0),
        ("whale:coinbase:ETH-USDT:2", 400_000.0),
        ("whale:binance:ETH-USDT:5", 250_000.0),
        ("whale:binance:BTC-USDT:1", 150_000.0),
    ]
    assert list(rows[0]) == [
        "symbol",
        "exchange",
        "side",
        "timestamp",
        "price",
        "quantity",
        "quote_volume",
        "quote_asset",
        "size_tier",
        "alert_id",
    ]
    assert rows[0]["timestamp"] == datetime(2025, 12, 31, 10, 0)
    assert (rows[0]["side"], rows[0]["quote_asset"], rows[0]["quantity"]) == ("sell", "USDT", 20.0)
    top_two = queries.run_query("top_whales", settings, limit=2, catalog=warehouse)
    assert top_two == rows[:2]


def test_anomalies_by_symbol_hour(settings: JobSettings, warehouse: Catalog) -> None:
    rows = queries.run_query("anomalies_by_symbol_hour", settings, catalog=warehouse)
    hour = DAY.replace(tzinfo=None)
    assert rows == [
        {
            "symbol": "BTC-USDT",
            "window_hour": hour + timedelta(hours=23),
            "anomalies": 1,
            "exchanges": 1,
            "max_z_score": 3.3,
            "total_quote_volume": 10_000.0,
        },
        {
            "symbol": "ETH-USDT",
            "window_hour": hour + timedelta(hours=11),
            "anomalies": 1,
            "exchanges": 1,
            "max_z_score": 2.6,
            "total_quote_volume": 50_000.0,
        },
        {
            "symbol": "BTC-USDT",
            "window_hour": hour + timedelta(hours=10),
            "anomalies": 3,
            "exchanges": 2,
            "max_z_score": 4.5,
            "total_quote_volume": 1_000_000.0,
        },
        {
            "symbol": "ETH-USDT",
            "window_hour": hour + timedelta(hours=10),
            "anomalies": 1,
            "exchanges": 1,
            "max_z_score": 5.0,
            "total_quote_volume": 100_000.0,
        },
    ]


def test_widest_spreads(settings: JobSettings, warehouse: Catalog) -> None:
    rows = queries.run_query("widest_spreads", settings, catalog=warehouse)
    noon = naive(DAY + timedelta(hours=12))
    assert [(r["symbol"], r["window_start"], r["spread_pct"], r["is_alert"]) for r in rows] == [
        ("BTC-USDT", noon, 0.8, True),
        ("ETH-USDT", noon, 0.8, True),
        ("ETH-USDT", naive(DAY + timedelta(hours=23)), 0.3, False),
        ("BTC-USDT", noon + timedelta(seconds=30), 0.1, False),
    ]
    assert rows[1] == {
        "window_start": noon,
        "symbol": "ETH-USDT",
        "spread_pct": 0.8,
        "high_exchange": "binance",
        "max_vwap": pytest.approx(4_032.0),
        "low_exchange": "coinbase",
        "min_vwap": 4_000.0,
        "exchange_count": 2,
        "is_alert": True,
    }


def test_alert_counts_by_type(settings: JobSettings, warehouse: Catalog) -> None:
    rows = queries.run_query("alert_counts_by_type", settings, catalog=warehouse)
    t = naive
    assert [tuple(r.values()) for r in rows] == [
        (
            "VOLUME_SPIKE",
            "BTC-USDT",
            2,
            2,
            t(ALERTS[0]["event_time"]),
            t(ALERTS[1]["event_time"]),
            4.5,
        ),
        (
            "VOLUME_SPIKE",
            "ETH-USDT",
            1,
            1,
            t(ALERTS[2]["event_time"]),
            t(ALERTS[2]["event_time"]),
            5.0,
        ),
        (
            "WHALE_TRADE",
            "BTC-USDT",
            2,
            2,
            t(WHALES[0]["timestamp"]),
            t(WHALES[2]["timestamp"]),
            1.2e6,
        ),
        (
            "WIDE_SPREAD",
            "BTC-USDT",
            1,
            0,
            t(ALERTS[5]["event_time"]),
            t(ALERTS[5]["event_time"]),
            0.8,
        ),
        (
            "WIDE_SPREAD",
            "ETH-USDT",
            1,
            0,
            t(ALERTS[6]["event_time"]),
            t(ALERTS[6]["event_time"]),
            0.8,
        ),
    ]
    assert list(rows[0]) == [
        "alert_type",
        "symbol",
        "alerts",
        "exchanges",
        "first_event_time",
        "last_event_time",
        "max_metric",
    ]


def test_dq_failure_rates(settings: JobSettings, warehouse: Catalog) -> None:
    rows = queries.run_query("dq_failure_rates", settings, catalog=warehouse)
    today, two_days_ago = TODAY.isoformat(), (TODAY - timedelta(days=2)).isoformat()
    assert rows == [
        {
            "job": "trade_archiver",
            "reason": "parse_json",
            "failed_records": 4,
            "pct_of_job_failures": 66.67,
            "first_dt": two_days_ago,
            "last_dt": today,
        },
        {
            "job": "trade_archiver",
            "reason": "completeness_symbol",
            "failed_records": 1,
            "pct_of_job_failures": 16.67,
            "first_dt": two_days_ago,
            "last_dt": two_days_ago,
        },
        {
            "job": "trade_archiver",
            "reason": "validity_price_positive",
            "failed_records": 1,
            "pct_of_job_failures": 16.67,
            "first_dt": today,
            "last_dt": today,
        },
        {
            "job": "whale_detector",
            "reason": "parse_json",
            "failed_records": 2,
            "pct_of_job_failures": 100.0,
            "first_dt": today,
            "last_dt": today,
        },
    ]


def test_the_local_dlq_table_reads_the_folders_as_athena_partitions(
    settings: JobSettings, warehouse: Catalog
) -> None:
    root = Path(settings.raw_zone) / "dlq"
    assert (root / "_batches").is_dir()  # the writer's manifests: not DLQ rows
    rows = queries.dlq_rows(root)
    assert len(rows) == sum(len(batch[3]) for batch in DLQ_BATCHES)
    (price,) = [r for r in rows if r["reason"] == "validity_price_positive"]
    assert price == {
        "raw": '{"price": -1}',
        "event_id": "binance:BTC-USDT:9",
        "failed_checks": ["validity_price_positive"],
        "job": "trade_archiver",
        "batch_id": 0,
        "reason": "validity_price_positive",
        "dt": TODAY.isoformat(),
    }
    result = queries.execute(
        "SELECT failed_checks, batch_id FROM crypto_pulse.dlq WHERE reason = 'completeness_symbol'",
        settings,
    )
    assert result.records() == [
        {"failed_checks": ["completeness_symbol", "validity_symbol_allowed"], "batch_id": 1}
    ]


def test_a_missing_table_names_the_fix(settings: JobSettings, tmp_path: Path) -> None:
    empty = settings.model_copy(
        update={"tables": settings.tables.model_copy(update={"warehouse": str(tmp_path / "w")})}
    )
    with pytest.raises(queries.MissingTableError, match=r"crypto_pulse\.spreads does not exist"):
        queries.run_query("widest_spreads", empty)


def test_an_unknown_query_names_the_known_ones(settings: JobSettings) -> None:
    with pytest.raises(queries.UnknownQueryError, match="known: alert_counts_by_type, "):
        queries.run_query("nope", settings)


# --- The command line ----------------------------------------------------------------------------


@pytest.fixture
def cli_env(
    settings: JobSettings, warehouse: Catalog, monkeypatch: pytest.MonkeyPatch
) -> JobSettings:
    monkeypatch.setenv("CRYPTO_PULSE_TABLES__CATALOG", settings.tables.catalog)
    monkeypatch.setenv("CRYPTO_PULSE_TABLES__WAREHOUSE", settings.tables.warehouse)
    monkeypatch.setenv("CRYPTO_PULSE_RAW_ZONE", settings.raw_zone)
    return settings


def test_cli_runs_a_query_as_an_aligned_table(
    cli_env: JobSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert queries.main(["run", "widest_spreads", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "window_start",
        "symbol",
        "spread_pct",
        "high_exchange",
        "max_vwap",
        "low_exchange",
        "min_vwap",
        "exchange_count",
        "is_alert",
    ]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == [
        "2026-01-01",
        "12:00:00",
        "BTC-USDT",
        "0.8",
        "coinbase",
        "100,800",
        "binance",
        "100,000",
        "2",
        "true",
    ]
    assert lines[-1] == "(2 rows)"
    # Aligned: every column starts where its header does, numbers end where it ends.
    assert lines[2].index("BTC-USDT") == lines[0].index("symbol")
    assert lines[2].index("0.8") + 3 == lines[0].index("spread_pct") + len("spread_pct")
    assert len(lines) == 5


def test_cli_runs_a_query_as_json(cli_env: JobSettings, capsys: pytest.CaptureFixture[str]) -> None:
    assert queries.main(["run", "latest_whales", "--limit", "1", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["timestamp"] == "2026-01-01T23:59:59.500000Z"
    assert (row["alert_id"], row["quote_volume"]) == ("whale:coinbase:BTC-USDT:3", 1_200_000.0)


def test_cli_lists_the_queries_with_what_they_return(capsys: pytest.CaptureFixture[str]) -> None:
    assert queries.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == SAVED
    assert "The latest whale trades" in lines[SAVED.index("latest_whales")]


def test_cli_errors_are_one_line_and_exit_2(
    cli_env: JobSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert queries.main(["run", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no saved query 'nope'")
