"""The saved Athena queries of `ddl/queries/`, run locally against the local tables (SPEC §7).

    python -m spark_jobs.queries list
    python -m spark_jobs.queries run latest_whales [--limit N] [--format table|json]
    python -m spark_jobs.queries dlq-ddl [--raw-zone s3://<bucket>/raw]

A saved query is one Athena (Trino) `SELECT` in `ddl/queries/<name>.sql`, reading tables as
`crypto_pulse.<table>`; its leading `--` comment says what it returns (`list` shows it). Files
starting with `_` are not queries: `_dlq_table.sql` is the DLQ's table for Athena (below).

Running one locally: every `crypto_pulse.<table>` the query reads is loaded whole from the
Iceberg catalog of the job settings (`iceberg.load_catalog`: the local SQLite catalog by default,
namespace `settings.tables.namespace`) with pyiceberg, registered in an in-memory DuckDB under
the schema `crypto_pulse`, and the query, transpiled from Athena's dialect to DuckDB's by
sqlglot, runs there. As on a table made by Athena's DDL, timestamps are zone-less UTC values
(DuckDB's session is in UTC too, for `current_date`). A local tool for small local tables, not an
engine: DuckDB is imported only when a query runs (`requirements-dev.txt`).

The DLQ is JSON lines under `{raw_zone}/dlq/{reason}/dt={YYYY-MM-DD}/` (`common.dlq`). On Athena
it is the external table `crypto_pulse.dlq` of `_dlq_table.sql`: the record's fields, partitioned
by `reason` and `dt` as the folders say, with partition projection (no crawler, no `MSCK`; the
manifests under `_batches/` are outside every projected folder). Its `reason` values are
enumerated there: the ERROR checks of `quality.default_checks` and `unknown`, kept equal by a
test. Create it with this module's `dlq-ddl`, which substitutes `${RAW_ZONE}` only (plain
`envsubst` would also blank the projection's `${reason}` and `${dt}`). Locally, `crypto_pulse.dlq`
is read from the raw zone's folders with the same columns.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import sqlglot
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from sqlglot import exp
from sqlglot.errors import SqlglotError

from spark_jobs.common.dlq import DLQ_FOLDER
from spark_jobs.common.iceberg import IcebergError, load_catalog
from spark_jobs.common.settings import JobSettings, SettingsError, load_job_settings

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

QUERIES_DIR = Path(__file__).resolve().parents[1] / "ddl" / "queries"
ATHENA_DATABASE = "crypto_pulse"  # what the saved queries call the tables' database
DLQ_TABLE = "dlq"
DLQ_DDL_FILE = "_dlq_table.sql"
RAW_ZONE_PLACEHOLDER = "${RAW_ZONE}"
FORMATS = ("table", "json")

# The DLQ table's columns, as `_dlq_table.sql` declares them: the JSON line's fields, then the
# partition columns taken from the folders.
DLQ_ARROW_SCHEMA = pa.schema(
    [
        pa.field("raw", pa.string()),
        pa.field("event_id", pa.string()),
        pa.field("failed_checks", pa.list_(pa.string())),
        pa.field("job", pa.string()),
        pa.field("batch_id", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("dt", pa.string()),
    ]
)
_DT_FOLDER = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


class QueryError(Exception):
    """A saved query could not be found, read or run; the message says which and why."""


class UnknownQueryError(QueryError):
    """No saved query of that name."""


class MissingTableError(QueryError):
    """A table the query reads is not in the catalog."""


@dataclass(frozen=True)
class QueryResult:
    """What a query returned: column names in order, and the rows as tuples."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


# --- The saved queries (pure) -------------------------------------------------------------------


def saved_queries(directory: Path = QUERIES_DIR) -> dict[str, Path]:
    """Query name -> file, sorted by name; `_*.sql` files are not queries."""
    return {
        path.stem: path for path in sorted(directory.glob("*.sql")) if not path.name.startswith("_")
    }


def query_sql(name: str, directory: Path = QUERIES_DIR) -> str:
    queries = saved_queries(directory)
    if name not in queries:
        known = ", ".join(queries) or "none"
        raise UnknownQueryError(f"no saved query {name!r} in {directory}; known: {known}")
    return queries[name].read_text(encoding="utf-8")


def description(sql: str) -> str:
    """The query's leading `--` comment, as one line."""
    lines = []
    for line in sql.splitlines():
        text = line.strip()
        if not text.startswith("--"):
            break
        lines.append(text.removeprefix("--").strip())
    return " ".join(part for part in lines if part)


def parse(sql: str) -> exp.Query:
    """The saved query's one Athena `SELECT` (or set operation)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    except SqlglotError as exc:
        raise QueryError(f"not valid Athena SQL: {exc}") from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise QueryError(f"a saved query is one SELECT, got {len(statements)} statement(s)")
    return statements[0]


def tables_read(query: exp.Query) -> list[str]:
    """The `crypto_pulse` tables the query reads, sorted; CTE names are not tables."""
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    names: set[str] = set()
    for table in query.find_all(exp.Table):
        if not table.db and table.name in ctes:
            continue
        if table.catalog or table.db != ATHENA_DATABASE:
            raise QueryError(
                f"table {table.sql(dialect='athena')} is not in {ATHENA_DATABASE}: "
                f"saved queries read {ATHENA_DATABASE}.<table>"
            )
        names.add(table.name)
    return sorted(names)


def capped(query: exp.Query, limit: int) -> exp.Query:
    """`query` returning at most `limit` rows (a smaller LIMIT of its own stays)."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    current = query.args.get("limit")
    value = current.expression if isinstance(current, exp.Limit) else None
    if isinstance(value, exp.Literal) and value.is_int and int(value.name) <= limit:
        return query
    return query.limit(limit)


def duckdb_sql(query: exp.Query) -> str:
    """The Athena query in DuckDB's dialect."""
    return query.sql(dialect="duckdb")


def dlq_ddl(raw_zone: str, directory: Path = QUERIES_DIR) -> str:
    """`_dlq_table.sql` for the raw zone `s3://<bucket>/<prefix>` (only `${RAW_ZONE}` replaced)."""
    if not raw_zone.startswith("s3://"):
        raise QueryError(f"the DLQ table needs an s3:// raw zone, got {raw_zone!r}")
    text = (directory / DLQ_DDL_FILE).read_text(encoding="utf-8")
    return text.replace(RAW_ZONE_PLACEHOLDER, raw_zone.rstrip("/"))


def dlq_reasons(ddl: str) -> list[str]:
    """The `reason` values the DLQ table's partition projection enumerates."""
    found = re.search(r"'projection\.reason\.values'\s*=\s*'([^']*)'", ddl)
    if found is None:
        raise QueryError("the DLQ DDL enumerates no projection.reason.values")
    return found.group(1).split(",")


# --- Loading the tables (I/O) -------------------------------------------------------------------


def zoneless(table: pa.Table) -> pa.Table:
    """Timestamps as zone-less UTC values, as Athena's DDL declares them (`timestamp`)."""
    fields = [
        field.with_type(pa.timestamp(field.type.unit))
        if pa.types.is_timestamp(field.type) and field.type.tz is not None
        else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))


def load_iceberg_table(catalog: Catalog, namespace: str, name: str) -> pa.Table:
    try:
        table = catalog.load_table((namespace, name))
    except NoSuchTableError as exc:
        raise MissingTableError(
            f"iceberg table {namespace}.{name} does not exist in catalog {catalog.name}: "
            "provision the tables (`python -m devstack.provision --tables`) and run the jobs"
        ) from exc
    return zoneless(table.scan().to_arrow())


def dlq_rows(dlq_root: Path) -> list[dict[str, Any]]:
    """The DLQ's rows from `{raw_zone}/dlq/{reason}/dt=*/*.jsonl`, with `reason` and `dt` from
    the folders (as Athena's partitions); sorted by file, then line."""
    rows: list[dict[str, Any]] = []
    for path in sorted(dlq_root.glob("*/dt=*/*.jsonl")):
        reason, folder = path.parent.parent.name, path.parent.name
        dt = _DT_FOLDER.fullmatch(folder)
        if reason.startswith(("_", ".")) or dt is None:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise QueryError(f"{path}:{number}: not a JSON line: {exc}") from exc
            if not isinstance(record, dict):
                raise QueryError(f"{path}:{number}: not a JSON object")
            rows.append(
                {
                    "raw": record.get("raw"),
                    "event_id": record.get("event_id"),
                    "failed_checks": record.get("failed_checks"),
                    "job": record.get("job"),
                    "batch_id": record.get("batch_id"),
                    "reason": reason,
                    "dt": dt.group(1),
                }
            )
    return rows


def load_dlq_table(settings: JobSettings) -> pa.Table:
    raw_zone = settings.resolve_path(settings.raw_zone).removeprefix("file://")
    if "://" in raw_zone:
        raise QueryError(
            f"the DLQ under {raw_zone!r} is not a local folder: query crypto_pulse.{DLQ_TABLE} "
            f"on Athena (ddl/queries/{DLQ_DDL_FILE})"
        )
    return pa.Table.from_pylist(dlq_rows(Path(raw_zone) / DLQ_FOLDER), schema=DLQ_ARROW_SCHEMA)


def load_tables(
    names: Sequence[str], settings: JobSettings, catalog: Catalog | None = None
) -> dict[str, pa.Table]:
    """The tables `names` of `crypto_pulse`, as Arrow; the catalog is loaded only if needed."""
    tables: dict[str, pa.Table] = {}
    for name in names:
        if name == DLQ_TABLE:
            tables[name] = load_dlq_table(settings)
            continue
        if catalog is None:
            catalog = load_catalog(settings)
        tables[name] = load_iceberg_table(catalog, settings.tables.namespace, name)
    return tables


def connect(tables: Mapping[str, pa.Table]) -> DuckDBPyConnection:
    """An in-memory DuckDB (UTC) holding `tables` as `crypto_pulse.<name>`."""
    import duckdb  # the local tool's dependency (requirements-dev.txt), not the jobs'

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f'CREATE SCHEMA "{ATHENA_DATABASE}"')
    for name, data in tables.items():
        view = f"__arrow_{name}"
        connection.register(view, data)
        connection.execute(f'CREATE TABLE "{ATHENA_DATABASE}"."{name}" AS SELECT * FROM "{view}"')
        connection.unregister(view)
    return connection


def execute(
    sql: str,
    settings: JobSettings,
    *,
    limit: int | None = None,
    catalog: Catalog | None = None,
) -> QueryResult:
    """Run one Athena query locally (see the module docstring)."""
    import duckdb

    query = parse(sql)
    if limit is not None:
        query = capped(query, limit)
    connection = connect(load_tables(tables_read(query), settings, catalog))
    try:
        cursor = connection.execute(duckdb_sql(query))
        columns = tuple(str(column[0]) for column in cursor.description or ())
        rows = [tuple(row) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise QueryError(f"the query failed in DuckDB: {exc}") from exc
    finally:
        connection.close()
    return QueryResult(columns, rows)


def run_saved(
    name: str,
    settings: JobSettings,
    *,
    limit: int | None = None,
    catalog: Catalog | None = None,
) -> QueryResult:
    """Run the saved query `name` locally; columns and rows."""
    return execute(query_sql(name), settings, limit=limit, catalog=catalog)


def run_query(
    name: str,
    settings: JobSettings,
    *,
    limit: int | None = None,
    catalog: Catalog | None = None,
) -> list[dict[str, Any]]:
    """Run the saved query `name` locally; its rows as dicts (column -> value), in order.

    Timestamps are naive `datetime`s holding UTC. `catalog` defaults to
    `iceberg.load_catalog(settings)`.
    """
    return run_saved(name, settings, limit=limit, catalog=catalog).records()


# --- Output -------------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """A result value as JSON: timestamps in ISO 8601 UTC with `Z`, decimals as numbers."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo is not None else value
        return utc.replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value


def render_json(result: QueryResult) -> str:
    return json.dumps(
        [{k: json_value(v) for k, v in r.items()} for r in result.records()], indent=2
    )


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        # Prices and volumes with thousands separators; small numbers (quantities, spreads)
        # keep their significant digits.
        if abs(value) >= 1:
            return f"{value:,.4f}".rstrip("0").rstrip(".")
        return f"{value:.6g}"
    if isinstance(value, datetime):
        utc = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
        return utc.isoformat(sep=" ")
    if isinstance(value, list | tuple):
        return ",".join(cell(item) for item in value)
    return str(value)


def render_table(result: QueryResult) -> str:
    """An aligned text table: numbers to the right, the rest to the left; a row count last."""
    cells = [[cell(value) for value in row] for row in result.rows]
    numeric = [
        all(
            isinstance(row[i], int | float | Decimal) and not isinstance(row[i], bool)
            for row in result.rows
            if row[i] is not None
        )
        and any(row[i] is not None for row in result.rows)
        for i in range(len(result.columns))
    ]
    widths = [
        max([len(column), *(len(row[i]) for row in cells)])
        for i, column in enumerate(result.columns)
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [line(result.columns), line(["-" * width for width in widths])]
    lines.extend(line(row) for row in cells)
    count = len(result.rows)
    lines.append(f"({count} row{'' if count == 1 else 's'})")
    return "\n".join(lines)


# --- Command line -------------------------------------------------------------------------------


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.queries",
        description="Run the saved Athena queries of ddl/queries/ against the local tables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the saved queries and what they return")
    run = commands.add_parser("run", help="run a saved query locally")
    run.add_argument("name", help="the query's file name without .sql (see `list`)")
    run.add_argument("--limit", type=_non_negative, help="return at most N rows")
    run.add_argument("--format", choices=FORMATS, default="table")
    ddl = commands.add_parser("dlq-ddl", help=f"print {DLQ_DDL_FILE} for an s3:// raw zone")
    ddl.add_argument("--raw-zone", help="s3://<bucket>/<prefix> (default: the settings' raw_zone)")
    return parser.parse_args(argv)


def list_queries() -> str:
    queries = {name: query_sql(name) for name in saved_queries()}
    width = max((len(name) for name in queries), default=0)
    return "\n".join(f"{name.ljust(width)}  {description(sql)}" for name, sql in queries.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "list":
            print(list_queries())
            return 0
        settings = load_job_settings()
        if args.command == "dlq-ddl":
            print(dlq_ddl(args.raw_zone or settings.raw_zone), end="")
            return 0
        result = run_saved(args.name, settings, limit=args.limit)
    except (QueryError, IcebergError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_json(result) if args.format == "json" else render_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
