"""The dead-letter queue: records that failed an ERROR check, as JSON lines (SPEC §6.2).

Layout under `{raw_zone}/dlq/` (a local folder or `s3://bucket/prefix`):

    {reason}/dt={YYYY-MM-DD}/{job}-{batch_id:010d}.jsonl   one file per reason, date and batch
    _batches/{job}/{batch_id:010d}.json                    the batch's manifest (its files)

- `dt` is the **processing date (UTC)** of the write: every DLQ row has one (a record that does
  not parse has no event time), and it is the day an operator looks for.
- Each line is a `schemas.DLQ_RECORD`: `raw` (the record text), `event_id` (when it could be
  read), `failed_checks`, `reason` (the first failed check), `job`, `batch_id`. Lines are sorted,
  so a batch always gives byte-identical files.
- Exactly once per micro-batch: file names depend only on (reason, date, job, batch id), so a
  replayed batch overwrites its files. A replay on a later day would write under another `dt=`:
  the manifest lists the batch's files and the stale ones are deleted. The manifest is written
  first, naming old and new files, so a crash at any point leaves nothing untracked. Folders
  starting with `_` are hidden from Spark's readers, so `_batches` does not pollute the DLQ.

Spark cannot write `s3://` locally (no hadoop-aws jar), and invalid rows are few: they are
collected to the driver and written with Python (boto3 for S3, honouring AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pyspark.sql import DataFrame

from spark_jobs.common import schemas
from spark_jobs.common.aws import client as aws_client
from spark_jobs.common.settings import JobSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DLQ_FOLDER = "dlq"
MANIFEST_FOLDER = "_batches"
DLQ_FIELDS: tuple[str, ...] = tuple(field.name for field in schemas.DLQ_RECORD.fields)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


class DlqError(RuntimeError):
    """The DLQ could not be written; the message names the location."""


@dataclass(frozen=True)
class DlqWriteResult:
    rows: int
    files: tuple[str, ...]  # locations written (paths or s3:// URIs)
    removed: tuple[str, ...] = ()  # stale files of an earlier attempt of the batch


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"


def dlq_file_key(reason: str, day: date, job: str, batch_id: int) -> str:
    """A DLQ file's path relative to `{raw_zone}/dlq/`."""
    return f"{_safe(reason)}/dt={day.isoformat()}/{_safe(job)}-{batch_id:010d}.jsonl"


def manifest_key(job: str, batch_id: int) -> str:
    return f"{MANIFEST_FOLDER}/{_safe(job)}/{batch_id:010d}.json"


def dlq_record(row: Mapping[str, Any], job: str, batch_id: int) -> dict[str, Any]:
    """A row of `quality.validate`'s invalid DataFrame -> the DLQ line's object."""
    failed = [str(name) for name in (row.get("failed_checks") or [])]
    reason = row.get("reason") or (failed[0] if failed else "unknown")
    return {
        "raw": row.get("raw"),
        "event_id": row.get("event_id"),
        "failed_checks": failed,
        "reason": str(reason),
        "job": job,
        "batch_id": batch_id,
    }


def dlq_files(
    rows: Iterable[Mapping[str, Any]], job: str, batch_id: int, day: date
) -> dict[str, bytes]:
    """Pure: the batch's files, relative key -> JSON lines (sorted, so replays are identical)."""
    lines: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        record = dlq_record(row, job, batch_id)
        key = dlq_file_key(record["reason"], day, job, batch_id)
        lines[key].append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return {key: ("\n".join(sorted(text)) + "\n").encode() for key, text in lines.items()}


class _Store(Protocol):
    def location(self, key: str) -> str: ...
    def read(self, key: str) -> bytes | None: ...
    def write(self, key: str, body: bytes) -> None: ...
    def delete(self, key: str) -> None: ...


class _LocalStore:
    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def location(self, key: str) -> str:
        return str(self.root / key)

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, body: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside then rename: a reader never sees half a file.
        fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


class _S3Store:
    def __init__(self, client: S3Client, uri: str) -> None:
        self.client = client
        bucket, _, prefix = uri.split("://", 1)[1].partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return response["Body"].read()

    def write(self, key: str, body: bytes) -> None:
        content_type = "application/json" if key.endswith(".json") else "application/x-ndjson"
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


class DlqWriter:
    """Writes a micro-batch's invalid rows under `{raw_zone}/dlq/` (see the module docstring).

    `s3_client` is used when the raw zone is `s3://…`; by default one is created on first use.
    """

    def __init__(
        self,
        settings: JobSettings,
        s3_client: S3Client | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.root = f"{settings.resolve_path(settings.raw_zone).rstrip('/')}/{DLQ_FOLDER}"
        self.clock = clock
        self._s3_client = s3_client
        self._store: _Store | None = None

    def store(self) -> _Store:
        if self._store is None:
            if self.root.startswith(("s3://", "s3a://")):
                client = self._s3_client or aws_client("s3", self.settings)
                self._store = _S3Store(client, self.root)
            elif "://" in self.root and not self.root.startswith("file://"):
                raise DlqError(f"unsupported DLQ location {self.root!r}: a folder or s3://")
            else:
                self._store = _LocalStore(self.root.removeprefix("file://"))
        return self._store

    def write(
        self,
        invalid_rows: DataFrame | Iterable[Mapping[str, Any]],
        job: str,
        batch_id: int,
        now: datetime | None = None,
    ) -> DlqWriteResult:
        """Write (or rewrite, on replay) the batch's DLQ files; `job`/`batch_id` label the rows."""
        if isinstance(invalid_rows, DataFrame):
            rows: list[Mapping[str, Any]] = [
                r.asDict(recursive=True) for r in invalid_rows.collect()
            ]
        else:
            rows = list(invalid_rows)
        day = (now or self.clock()).astimezone(UTC).date()
        files = dlq_files(rows, job, batch_id, day)
        store = self.store()
        manifest = manifest_key(job, batch_id)
        try:
            previous = self._read_manifest(store, manifest)
            if not files and not previous:
                return DlqWriteResult(0, ())
            planned = sorted(files)
            stale = sorted(set(previous) - set(files))
            # Name every file before touching any, so a crash leaves none untracked.
            if previous != planned:
                self._write_manifest(store, manifest, job, batch_id, sorted({*previous, *planned}))
            for key, body in files.items():
                store.write(key, body)
            for key in stale:
                store.delete(key)
            if stale:
                self._write_manifest(store, manifest, job, batch_id, planned)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise DlqError(
                f"DLQ write of {job} batch {batch_id} under {self.root} failed: {exc}"
            ) from exc
        return DlqWriteResult(
            rows=len(rows),
            files=tuple(store.location(key) for key in planned),
            removed=tuple(store.location(key) for key in stale),
        )

    @staticmethod
    def _read_manifest(store: _Store, key: str) -> list[str]:
        body = store.read(key)
        if body is None:
            return []
        return [str(name) for name in json.loads(body)["files"]]

    @staticmethod
    def _write_manifest(store: _Store, key: str, job: str, batch_id: int, files: list[str]) -> None:
        body = {"job": job, "batch_id": batch_id, "files": files}
        store.write(key, json.dumps(body, indent=1).encode())
