"""The Iceberg adapter: catalog, table provisioning and the exactly-once sink (SPEC §6.4).

Catalog: pyiceberg's own configuration decides. When the catalog named `settings.tables.catalog`
is configured for pyiceberg (`.pyiceberg.yaml` in $PYICEBERG_HOME, ~ or the working directory, or
`PYICEBERG_CATALOG__<NAME>__<KEY>` variables), that catalog is used: on AWS, e.g.

    PYICEBERG_CATALOG__CRYPTO_PULSE__TYPE=glue
    PYICEBERG_CATALOG__CRYPTO_PULSE__WAREHOUSE=s3://<bucket>/warehouse

(`_` in a catalog name may be spelled `_` or `-`; with `AWS_ENDPOINT_URL` set, the S3 FileIO
gets it as `s3.endpoint` unless configured). Otherwise the local default is a SQL catalog on SQLite,
`<warehouse>/catalog.db`, with its data in the warehouse folder `settings.tables.warehouse`
(tables at `<warehouse>/<namespace>/<table>`).

Writes need `pyiceberg-core` (pyiceberg's `day` transform is implemented there).

Exactly once: every commit of `IcebergSink.append` carries the writer and the micro-batch id in its
snapshot summary (`crypto-pulse.writer`, `crypto-pulse.batch-id`), in the same atomic commit as the
rows. A replayed batch whose snapshot is already on the table's main branch is skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
from pyiceberg.catalog import Catalog
from pyiceberg.catalog import load_catalog as pyiceberg_load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.types import (
    IcebergType,
    ListType,
    NestedField,
    TimestampType,
    TimestamptzType,
)
from pyiceberg.utils.config import Config

from spark_jobs.common.settings import JobSettings
from spark_jobs.common.tables import DEFAULT_NAMESPACE, TABLES, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

WRITER_PROPERTY = "crypto-pulse.writer"
BATCH_ID_PROPERTY = "crypto-pulse.batch-id"
SQLITE_CATALOG_FILE = "catalog.db"


class IcebergError(Exception):
    """Root of this adapter's errors."""


class CatalogNotConfiguredError(IcebergError):
    """No pyiceberg configuration for the catalog, and no local warehouse folder to default to."""


class TableSchemaMismatchError(IcebergError):
    """An existing table disagrees with its declaration in `spark_jobs.common.tables`."""


class BatchDataError(IcebergError):
    """A batch does not fit its table (unknown or missing columns, nulls in required columns)."""


class BatchOrderError(IcebergError):
    """A writer's batch id went backwards to a batch that was never committed."""


# --- Catalog -------------------------------------------------------------------------------------


def configured_catalog(name: str) -> dict[str, str] | None:
    """pyiceberg's configuration of catalog `name`, read now, or None if it has none.

    pyiceberg reads its environment variables at import; this reads them (and `.pyiceberg.yaml`)
    when called. Its variable parser turns `_` in a catalog name into `-`
    (`PYICEBERG_CATALOG__CRYPTO_PULSE__TYPE` configures `crypto-pulse`), so both spellings count.
    """
    config = Config()
    for candidate in dict.fromkeys((name, name.replace("_", "-"))):
        properties = config.get_catalog_config(candidate)
        if properties:
            return {key: str(value) for key, value in properties.items()}
    return None


def load_catalog(settings: JobSettings) -> Catalog:
    """The catalog `settings.tables.catalog`, as pyiceberg is configured, else local SQLite."""
    name = settings.tables.catalog
    properties = configured_catalog(name)
    if properties is not None:
        # boto3 (the Glue client) honours AWS_ENDPOINT_URL by itself; pyiceberg's S3 FileIO
        # needs it as `s3.endpoint` (SPEC §3: every AWS client honours it), and a region, since
        # asking AWS where a bucket lives means nothing behind another endpoint.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if endpoint:
            properties.setdefault("s3.endpoint", endpoint)
            if region:
                properties.setdefault("s3.region", region)
        log.info(
            "iceberg catalog %s from pyiceberg configuration (type %s)",
            name,
            properties.get("type", "inferred"),
        )
        return pyiceberg_load_catalog(name, **properties)
    warehouse = settings.resolve_path(settings.tables.warehouse)
    if "://" in warehouse:
        raise CatalogNotConfiguredError(
            f"tables.warehouse is {warehouse!r} but pyiceberg has no configuration for catalog "
            f"{name!r}: configure it in .pyiceberg.yaml or PYICEBERG_CATALOG__"
            f"{name.upper()}__TYPE/... (e.g. type glue); the SQLite default needs a local folder"
        )
    folder = Path(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    log.info("iceberg catalog %s: local SQLite catalog in %s", name, folder)
    return SqlCatalog(
        name,
        uri=f"sqlite:///{folder / SQLITE_CATALOG_FILE}",
        warehouse=folder.resolve().as_uri(),
    )


# --- Tables --------------------------------------------------------------------------------------


def ensure_tables(
    catalog: Catalog,
    namespace: str = DEFAULT_NAMESPACE,
    specs: Iterable[TableSpec] = TABLES.values(),
) -> dict[str, Table]:
    """Create the namespace and every table that is missing; check the ones that exist.

    Idempotent. An existing table is never altered: if it disagrees with its `TableSpec`,
    `TableSchemaMismatchError` says how.
    """
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    tables: dict[str, Table] = {}
    for spec in specs:
        identifier = spec.identifier(namespace)
        try:
            table = catalog.create_table(
                identifier, schema=spec.iceberg_schema(), partition_spec=spec.partition_spec()
            )
            log.info("created iceberg table %s.%s", namespace, spec.name)
        except TableAlreadyExistsError:
            table = catalog.load_table(identifier)
            check_table(table, spec)
        tables[spec.name] = table
    return tables


def _compatible(actual: IcebergType, expected: IcebergType) -> bool:
    # Athena's DDL cannot declare timestamptz: a table created from ddl/ has `timestamp`.
    instants = (TimestampType, TimestamptzType)
    if isinstance(actual, instants) and isinstance(expected, instants):
        return True
    if isinstance(actual, ListType) and isinstance(expected, ListType):
        return _compatible(actual.element_type, expected.element_type) and (
            expected.element_required or not actual.element_required
        )
    return actual == expected


def _describe(field: NestedField) -> str:
    return f"`{field.name} {field.field_type}{' required' if field.required else ''}`"


def schema_problems(actual: Schema, spec: TableSpec) -> list[str]:
    """How `actual` fails to hold `spec`'s rows (empty when it does).

    Rules: the code's columns come first, in order, with the same types (`timestamp` accepted for
    `timestamptz`); a column may be optional in the table where the code requires it (Athena's DDL
    has no NOT NULL), not the reverse; columns after them (added by schema evolution) must be
    optional.
    """
    expected = spec.iceberg_schema().fields
    present = actual.fields
    problems = []
    for position, want in enumerate(expected):
        if position >= len(present):
            problems.append(f"column {position + 1} {_describe(want)} is missing")
            continue
        have = present[position]
        if have.name != want.name or not _compatible(have.field_type, want.field_type):
            problems.append(
                f"column {position + 1}: table has {_describe(have)}, code expects "
                f"{_describe(want)}"
            )
        elif have.required and not want.required:
            problems.append(
                f"column {position + 1} `{have.name}` is required in the table but "
                "optional in the code"
            )
    problems.extend(
        f"extra column {_describe(extra)} is required: the code does not write it"
        for extra in present[len(expected) :]
        if extra.required
    )
    return problems


def partition_problems(table: Table, spec: TableSpec) -> list[str]:
    schema = table.schema()
    have = [
        (str(field.transform), schema.find_column_name(field.source_id))
        for field in table.spec().fields
    ]
    want = [(column.transform, column.source) for column in spec.partition]
    if have == want:
        return []
    show = ", ".join(f"{transform}({source})" for transform, source in have) or "none"
    return [
        f"partitioned by {show}, code expects "
        + ", ".join(f"{column.transform}({column.source})" for column in spec.partition)
    ]


def check_table(table: Table, spec: TableSpec) -> None:
    """Raise `TableSchemaMismatchError` if `table` cannot be `spec`'s table."""
    problems = schema_problems(table.schema(), spec) + partition_problems(table, spec)
    if problems:
        name = ".".join(table.name())
        raise TableSchemaMismatchError(
            f"iceberg table {name} does not match its declaration in spark_jobs/common/tables.py: "
            + "; ".join(problems)
            + ". Existing tables are never altered: migrate the table (or drop it in a local "
            "warehouse) and run the provisioning again"
        )


# --- The sink ------------------------------------------------------------------------------------


def _batch_id(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def conform(data: pa.Table, schema: Schema, table_name: str) -> pa.Table:
    """`data` in the table's column order and Arrow types; µs UTC timestamps, exactly.

    Optional columns the batch lacks (added to the table later) are written as nulls. A cast that
    would lose precision (e.g. ns timestamps with sub-µs digits) fails rather than truncating.
    """
    target = schema.as_arrow()
    names = set(data.column_names)
    unknown = sorted(names - set(target.names))
    missing_required = [f.name for f in target if f.name not in names and not f.nullable]
    nulls = [
        f"{f.name} ({data.column(f.name).null_count} nulls)"
        for f in target
        if not f.nullable and f.name in names and data.column(f.name).null_count
    ]
    if unknown or missing_required or nulls or len(names) != data.num_columns:
        parts = []
        if unknown:
            parts.append(f"columns not in the table: {unknown}")
        if missing_required:
            parts.append(f"required columns missing: {missing_required}")
        if nulls:
            parts.append(f"nulls in required columns: {', '.join(nulls)}")
        if len(names) != data.num_columns:
            parts.append(f"duplicate column names in {data.column_names}")
        raise BatchDataError(f"batch does not fit iceberg table {table_name}: " + "; ".join(parts))
    columns = [
        data.column(f.name) if f.name in names else pa.nulls(data.num_rows, f.type) for f in target
    ]
    return pa.Table.from_arrays(columns, names=target.names).cast(target)


class IcebergSink:
    """Appends micro-batches to one table, exactly once per (writer, batch id).

    `writer` names the stream of batches, e.g. the job (`volume_anomaly`): several writers may
    share a table (`alerts`). A writer's batch ids must grow, as Spark's do within one checkpoint:
    replaying the latest batch (a job killed after its commit and restarted) is skipped; an older
    batch id is skipped if committed and rejected (`BatchOrderError`) if not. A checkpoint that is
    reset starts its ids again, so it needs a new writer name (e.g. with the streaming query's
    `id`, which survives restarts from the same checkpoint).

    Two sinks of the same writer committing the same batch at the same moment are not guarded
    (pyiceberg retries a commit that lost a race without asking us again); Spark runs one query
    per checkpoint.
    """

    def __init__(
        self, catalog: Catalog, table_name: str, writer: str, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        if not writer:
            raise ValueError("writer must be a non-empty name")
        self.writer = writer
        self.identifier = (
            tuple(table_name.split(".")) if "." in table_name else (namespace, table_name)
        )
        try:
            self.table = catalog.load_table(self.identifier)
        except NoSuchTableError as exc:
            raise IcebergError(
                f"iceberg table {'.'.join(self.identifier)} does not exist: provision the tables "
                "first (`python -m devstack.provision --tables`, or iceberg.ensure_tables)"
            ) from exc
        self.name = ".".join(self.identifier)

    def is_committed(self, batch_id: int) -> bool:
        """Whether this writer's `batch_id` is on the table (as of the last refresh)."""
        return self._lookup(batch_id)[0]

    def _lookup(self, batch_id: int) -> tuple[bool, int | None]:
        """(committed?, the writer's latest committed batch id) on the main branch.

        Batch ids of a writer only grow along the branch (`append` keeps it so), so the walk from
        the head stops at the writer's latest commit for a new or a replayed latest batch, the
        common cases; only an older batch id is looked up further back.
        """
        latest: int | None = None
        for snapshot in ancestors_of(self.table.current_snapshot(), self.table.metadata):
            summary = snapshot.summary
            if summary is None or summary.get(WRITER_PROPERTY) != self.writer:
                continue
            committed = _batch_id(summary.get(BATCH_ID_PROPERTY))
            if committed is None:
                continue
            if committed == batch_id:
                return True, latest if latest is not None else committed
            if latest is None:
                latest = committed
                if committed < batch_id:
                    return False, latest
        return False, latest

    def append(self, data: pa.Table | DataFrame, batch_id: int) -> bool:
        """Append one micro-batch; True if this call committed it, False if there was nothing to
        commit (already committed, or empty: an empty batch leaves no snapshot and needs none).

        Raises `BatchOrderError` for rows under a batch id older than the writer's latest commit
        (a replay of an old batch that was empty then is empty now, and passes).
        """
        if batch_id < 0:
            raise ValueError(f"batch_id must be >= 0, got {batch_id}")
        if isinstance(data, pa.Table) and data.num_rows == 0:
            return False  # rows already computed and none: no catalog round trip
        self.table.refresh()
        committed, latest = self._lookup(batch_id)
        if committed:
            log.info(
                "%s: batch %s of %s already committed, skipped", self.name, batch_id, self.writer
            )
            return False
        # A DataFrame is computed only now, so a skipped replay costs no Spark job.
        arrow: Any = data if isinstance(data, pa.Table) else data.toArrow()
        if arrow.num_rows == 0:
            return False
        if latest is not None and batch_id < latest:
            raise BatchOrderError(
                f"writer {self.writer!r} already committed batch {latest} to {self.name}; batch "
                f"{batch_id} is older, was never committed and has rows. Batch ids of a writer "
                "must grow: a reset checkpoint needs a new writer name"
            )
        arrow = conform(arrow, self.table.schema(), self.name)
        self.table.append(
            arrow,
            snapshot_properties={WRITER_PROPERTY: self.writer, BATCH_ID_PROPERTY: str(batch_id)},
        )
        log.info(
            "%s: batch %s of %s committed, %s rows",
            self.name,
            batch_id,
            self.writer,
            arrow.num_rows,
        )
        return True


def committed_rows(table: Table, writer: str) -> dict[int, int]:
    """Rows added per batch id by `writer` on the main branch (for checks and the demo)."""
    rows: dict[int, int] = {}
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        summary = snapshot.summary
        if summary is None or summary.get(WRITER_PROPERTY) != writer:
            continue
        batch = _batch_id(summary.get(BATCH_ID_PROPERTY))
        if batch is not None:
            rows[batch] = rows.get(batch, 0) + int(summary.get("added-records") or 0)
    return rows
