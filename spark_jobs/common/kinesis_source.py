"""Kinesis as a PySpark Python data source (SPEC §6.1): format `kinesis`, no JVM jar.

    spark.dataSource.register(KinesisDataSource)
    spark.readStream.format("kinesis").option("kinesis.streamName", "trades").load()

Rows are exactly the `aws-kinesis` connector's (`schemas.RAW_KINESIS_RECORD`): `data binary,
streamName string, partitionKey string, sequenceNumber string, approximateArrivalTimestamp
timestamp`. Options carry the connector's names (`OPT_*` below), so a job switches between the
two sources by configuration (`read_stream`).

How a micro-batch is made
-------------------------
Offsets map every tracked shard to a position, as JSON (keys sorted, so an unchanged stream gives
an identical offset and Spark plans no batch):

    {"shardId-000000000000": {"after": "4959...", "finished": true},
     "shardId-000000000001": {"after": "4959..."},
     "shardId-000000000002": {"at": "TRIM_HORIZON", "parents": ["shardId-000000000000"]}}

    {"after": SEQ}               the next record follows SEQ (AFTER_SEQUENCE_NUMBER)
    {"at_sequence": SEQ}         the next record is SEQ (AT_SEQUENCE_NUMBER)
    {"at": "TRIM_HORIZON"}       nothing read yet; the shard's oldest record is next
    {"at_timestamp_ms": T}       nothing read yet; the first record arriving at or after T is next
    {"at": "LATEST", "since_ms": T}   nothing read yet, started with LATEST at T (driver clock)
    "parents": [...]             the shard's parents (resharding); it is read after them
    "finished": true             a closed shard read to its end: its children may start

- `latestOffset()` lists the shards (new children join at TRIM_HORIZON), then reads ahead with
  GetRecords from the current position of each readable shard, at most
  `kinesis.maxFetchRecordsPerShard` per shard and `kinesis.maxRecordsPerBatch` in all (shared
  fairly), up to the first page at the shard's tip (`MillisBehindLatest` 0), and returns where
  it stopped. A shard is readable when none of its tracked parents is unfinished *at the batch's
  start*, so a parent's records are always in earlier batches than its children's:
  per-partition-key order holds across a reshard.
- A shard's GetRecords calls start `kinesis.getRecords.fetchIntervalMs` apart (default 200 ms:
  Kinesis allows 5 a second per shard; the time a call takes counts towards it), across batches
  too: a read-ahead that comes sooner waits out the rest of the interval. A query triggering as
  fast as it goes then polls an idle stream 5 times a second, not as often as Spark asks.
- `partitions(start, end)` makes one partition per shard with records in (start, end]. The
  records the read-ahead just read travel with the partition (one Arrow batch per page, decoded
  by msgspec straight from the answer), so a batch reads each record from Kinesis once; a batch
  planned without them (a restarted query re-running its last batch)
  replays exactly (start, end] with AT_/AFTER_SEQUENCE_NUMBER iterators: the same rows.
  Nothing is ever emitted from a LATEST position: a Kinesis LATEST iterator cannot be replayed,
  so the read-ahead turns it into `{"at_sequence": first record}` (found with an AT_TIMESTAMP
  iterator at `since_ms`) and the records are read from there in the next batch.
- Spark's offset log is the checkpoint: `commit()` has nothing to release. On restart Spark hands
  the reader its last planned offset (`partitions(end, end)`) before asking for a new one.

Kinesis facts handled: ExpiredIteratorException (iterators live 5 minutes; re-obtained from the
last sequence number read), throttling and transient faults (capped, jittered backoff; botocore's
own retries are off so the budget is ours), closed shards (a null NextShardIterator, or a closed
shard's empty page at the tip), ChildShards in GetRecords, shards gone past the retention period.
Sequence numbers are compared as integers (they are decimal strings, increasing per shard).

Not handled: KPL-aggregated records are passed through as they are (the producer does not
aggregate), and enhanced fan-out (SubscribeToShard) is the connector's business.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import botocore.session
import msgspec
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
from botocore import exceptions as botocore_errors
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from producer.kinesis_wire import KinesisWire, wire_for
from spark_jobs.common.schemas import RAW_KINESIS_RECORD

if TYPE_CHECKING:
    from mypy_boto3_kinesis.client import KinesisClient

    from spark_jobs.common.settings import JobSettings, StreamSettings

log = logging.getLogger(__name__)

FORMAT = "kinesis"
CONNECTOR_FORMAT = "aws-kinesis"  # the connector bundled with EMR 7.1+ / EMR Serverless

# Option names: the aws-kinesis connector's (awslabs/spark-sql-kinesis-connector), except
# `kinesis.maxRecordsPerBatch`, which it lacks (it caps per shard only).
OPT_STREAM_NAME = "kinesis.streamName"
OPT_ENDPOINT_URL = "kinesis.endpointUrl"
OPT_REGION = "kinesis.region"
OPT_STARTING_POSITION = "kinesis.startingPosition"
OPT_MAX_FETCH_RECORDS_PER_SHARD = "kinesis.maxFetchRecordsPerShard"
OPT_MAX_RECORDS_PER_BATCH = "kinesis.maxRecordsPerBatch"
OPT_RECORDS_PER_FETCH = "kinesis.getRecords.numberOfRecordsPerFetch"
OPT_FETCH_INTERVAL_MS = "kinesis.getRecords.fetchIntervalMs"
OPT_CLIENT_NUM_RETRIES = "kinesis.clientNumRetries"
OPT_CLIENT_RETRY_INTERVAL_MS = "kinesis.clientRetryIntervalsMs"
OPT_CLIENT_MAX_RETRY_INTERVAL_MS = "kinesis.clientMaxRetryIntervalMs"
OPT_FAIL_ON_DATA_LOSS = "kinesis.failOnDataLoss"
OPT_CHECK_NEW_RECORD_THREADS = "kinesis.checkNewRecordThreads"
OPT_ACCESS_KEY_ID = "kinesis.awsAccessKeyId"
OPT_SECRET_KEY = "kinesis.awsSecretKey"
OPT_SESSION_TOKEN = "kinesis.sessionToken"
OPT_CONSUMER_TYPE = "kinesis.consumerType"  # connector only

_KNOWN_OPTIONS = frozenset(
    name.lower()
    for name in (
        OPT_STREAM_NAME,
        OPT_ENDPOINT_URL,
        OPT_REGION,
        OPT_STARTING_POSITION,
        OPT_MAX_FETCH_RECORDS_PER_SHARD,
        OPT_MAX_RECORDS_PER_BATCH,
        OPT_RECORDS_PER_FETCH,
        OPT_FETCH_INTERVAL_MS,
        OPT_CLIENT_NUM_RETRIES,
        OPT_CLIENT_RETRY_INTERVAL_MS,
        OPT_CLIENT_MAX_RETRY_INTERVAL_MS,
        OPT_FAIL_ON_DATA_LOSS,
        OPT_CHECK_NEW_RECORD_THREADS,
        OPT_ACCESS_KEY_ID,
        OPT_SECRET_KEY,
        OPT_SESSION_TOKEN,
    )
)

DEFAULT_STARTING_POSITION = "LATEST"  # the connector's default, for streams
DEFAULT_MAX_FETCH_RECORDS_PER_SHARD = 100_000
DEFAULT_RECORDS_PER_FETCH = 10_000  # GetRecords' own maximum
DEFAULT_FETCH_INTERVAL_MS = 200  # 5 GetRecords/s per shard is the service limit
DEFAULT_CLIENT_NUM_RETRIES = 5
DEFAULT_CLIENT_RETRY_INTERVAL_MS = 1_000
DEFAULT_CLIENT_MAX_RETRY_INTERVAL_MS = 10_000
DEFAULT_CHECK_NEW_RECORD_THREADS = 8
# A read-ahead stops following empty pages that are still behind the tip after this many: on a
# sparse shard Kinesis returns empty pages while it skips over time; the next batch continues.
MAX_EMPTY_PAGES = 10
# ExpiredIteratorException twice in a row on a fresh iterator means something else is wrong.
MAX_ITERATOR_RENEWALS = 3

RETRYABLE_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)

PositionKind = Literal[
    "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"
]
T = TypeVar("T")


class KinesisSourceError(Exception):
    """Root of the Kinesis source's errors."""


class KinesisOptionsError(KinesisSourceError, ValueError):
    """An option is missing or invalid; the message names it."""


class KinesisOffsetError(KinesisSourceError, ValueError):
    """An offset (from Spark's checkpoint) is not one this source writes."""


class KinesisDataLossError(KinesisSourceError):
    """Records that should be there are not (trimmed past retention, shard gone)."""


class KinesisThrottledError(KinesisSourceError):
    """Throttled or failing after every retry."""


class KinesisRequestError(KinesisSourceError):
    """Kinesis refused a request (not retryable)."""


# ---------------------------------------------------------------------------------------------
# Pure core: positions, offsets, lineage, ranges, backoff, options.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardOffset:
    """One shard's position in an offset (see the module docstring for its JSON)."""

    kind: PositionKind
    sequence_number: str | None = None  # AT_/AFTER_SEQUENCE_NUMBER
    timestamp_ms: int | None = None  # AT_TIMESTAMP; LATEST: when the query started
    parents: tuple[str, ...] = ()
    finished: bool = False

    @staticmethod
    def trim_horizon(parents: Sequence[str] = ()) -> ShardOffset:
        return ShardOffset("TRIM_HORIZON", parents=tuple(parents))

    def after(self, sequence_number: str) -> ShardOffset:
        """This shard, positioned after `sequence_number` (its lineage kept)."""
        return ShardOffset("AFTER_SEQUENCE_NUMBER", sequence_number, parents=self.parents)

    @property
    def has_read(self) -> bool:
        """Whether this position is past a known record (a range can end here)."""
        return self.kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any]
        if self.kind == "AFTER_SEQUENCE_NUMBER":
            value = {"after": self.sequence_number}
        elif self.kind == "AT_SEQUENCE_NUMBER":
            value = {"at_sequence": self.sequence_number}
        elif self.kind == "AT_TIMESTAMP":
            value = {"at_timestamp_ms": self.timestamp_ms}
        elif self.kind == "LATEST":
            value = {"at": "LATEST", "since_ms": self.timestamp_ms}
        else:
            value = {"at": "TRIM_HORIZON"}
        if self.parents:
            value["parents"] = list(self.parents)
        if self.finished:
            value["finished"] = True
        return value

    @staticmethod
    def from_json(value: Any) -> ShardOffset:
        if not isinstance(value, Mapping):
            raise KinesisOffsetError(f"a shard position must be an object, got {value!r}")
        parents = value.get("parents", [])
        finished = value.get("finished", False)
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise KinesisOffsetError(f"'parents' must be a list of shard ids in {value!r}")
        if not isinstance(finished, bool):
            raise KinesisOffsetError(f"'finished' must be a boolean in {value!r}")
        kind: PositionKind
        sequence_number: str | None = None
        timestamp_ms: int | None = None
        if _is_sequence_number(value.get("after")):
            kind, sequence_number = "AFTER_SEQUENCE_NUMBER", value["after"]
        elif _is_sequence_number(value.get("at_sequence")):
            kind, sequence_number = "AT_SEQUENCE_NUMBER", value["at_sequence"]
        elif _is_int(value.get("at_timestamp_ms")):
            kind, timestamp_ms = "AT_TIMESTAMP", value["at_timestamp_ms"]
        elif value.get("at") == "LATEST" and _is_int(value.get("since_ms")):
            kind, timestamp_ms = "LATEST", value["since_ms"]
        elif value.get("at") == "TRIM_HORIZON":
            kind = "TRIM_HORIZON"
        else:
            raise KinesisOffsetError(f"not a Kinesis shard position: {value!r}")
        return ShardOffset(kind, sequence_number, timestamp_ms, tuple(parents), finished)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sequence_number(value: object) -> bool:
    return isinstance(value, str) and value.isdigit()


Offsets = dict[str, ShardOffset]


def offsets_to_json(offsets: Mapping[str, ShardOffset]) -> dict[str, Any]:
    """Canonical JSON: shard ids sorted, so equal offsets serialize identically."""
    return {shard_id: offsets[shard_id].to_json() for shard_id in sorted(offsets)}


def offsets_from_json(value: Any) -> Offsets:
    if not isinstance(value, Mapping):
        raise KinesisOffsetError(f"a Kinesis offset must be an object, got {value!r}")
    return {str(shard_id): ShardOffset.from_json(pos) for shard_id, pos in value.items()}


def iterator_request(offset: ShardOffset) -> dict[str, Any]:
    """GetShardIterator arguments (besides stream and shard) that resume at `offset`.

    LATEST is asked as AT_TIMESTAMP at the query's start: unlike a LATEST iterator, it can be
    asked again after a restart and still means the same records."""
    if offset.kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        return {"ShardIteratorType": offset.kind, "StartingSequenceNumber": offset.sequence_number}
    if offset.kind in ("AT_TIMESTAMP", "LATEST"):
        assert offset.timestamp_ms is not None
        return {
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": datetime.fromtimestamp(offset.timestamp_ms / 1000, tz=UTC),
        }
    return {"ShardIteratorType": "TRIM_HORIZON"}


@dataclass(frozen=True)
class ShardInfo:
    """A shard as ListShards describes it."""

    shard_id: str
    parents: tuple[str, ...] = ()
    closed: bool = False  # no more records will arrive (it has an ending sequence number)


def shard_info(shard: Mapping[str, Any]) -> ShardInfo:
    parents = tuple(
        p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
    )
    closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
    return ShardInfo(str(shard["ShardId"]), parents, closed)


@dataclass(frozen=True)
class StartingPosition:
    kind: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
    timestamp_ms: int | None = None


def parse_starting_position(text: str) -> StartingPosition:
    """The connector's syntax: `TRIM_HORIZON` (alias `EARLIEST`), `LATEST`, or
    `AT_TIMESTAMP 2023-08-30T19:00:05Z` (ISO 8601; without an offset, UTC)."""
    words = text.strip().split()
    kind = words[0].upper() if words else ""
    if kind in ("TRIM_HORIZON", "EARLIEST") and len(words) == 1:
        return StartingPosition("TRIM_HORIZON")
    if kind == "LATEST" and len(words) == 1:
        return StartingPosition("LATEST")
    if kind == "AT_TIMESTAMP" and len(words) == 2:
        try:
            moment = datetime.fromisoformat(words[1])
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return StartingPosition("AT_TIMESTAMP", round(moment.timestamp() * 1000))
    raise KinesisOptionsError(
        f"{OPT_STARTING_POSITION}: expected TRIM_HORIZON, EARLIEST, LATEST or "
        f"'AT_TIMESTAMP <ISO 8601>', got {text!r}"
    )


def initial_offsets(shards: Sequence[ShardInfo], start: StartingPosition, now_ms: int) -> Offsets:
    """Where a new query starts. TRIM_HORIZON and AT_TIMESTAMP track every listed shard (the
    lineage orders them); LATEST only the open ones: a closed shard has nothing newer."""
    offsets: Offsets = {}
    for shard in shards:
        if start.kind == "TRIM_HORIZON":
            offsets[shard.shard_id] = ShardOffset.trim_horizon(shard.parents)
        elif start.kind == "AT_TIMESTAMP":
            offsets[shard.shard_id] = ShardOffset(
                "AT_TIMESTAMP", timestamp_ms=start.timestamp_ms, parents=shard.parents
            )
        elif not shard.closed:
            offsets[shard.shard_id] = ShardOffset(
                "LATEST", timestamp_ms=now_ms, parents=shard.parents
            )
    return offsets


def discover_shards(offsets: Offsets, listed: Sequence[ShardInfo]) -> tuple[Offsets, list[str]]:
    """Merge a shard listing into offsets: new shards (children of a reshard) join at
    TRIM_HORIZON, finished shards that expired from the listing are dropped. Returns the new
    offsets and the unfinished shards that vanished (their unread records are lost)."""
    listed_ids = {shard.shard_id for shard in listed}
    merged: Offsets = {}
    lost: list[str] = []
    for shard_id, offset in offsets.items():
        if shard_id in listed_ids:
            merged[shard_id] = offset
        elif not offset.finished:
            lost.append(shard_id)
    for shard in listed:
        merged.setdefault(shard.shard_id, ShardOffset.trim_horizon(shard.parents))
    return merged, sorted(lost)


def readable_shards(offsets: Mapping[str, ShardOffset]) -> list[str]:
    """The unfinished shards none of whose tracked parents is unfinished, parents before
    children (then by shard id, which Kinesis allots in creation order)."""
    ready = [
        shard_id
        for shard_id, offset in offsets.items()
        if not offset.finished
        and all(p not in offsets or offsets[p].finished for p in offset.parents)
    ]
    return sorted(ready, key=lambda shard_id: (lineage_depth(offsets, shard_id), shard_id))


def lineage_depth(offsets: Mapping[str, ShardOffset], shard_id: str) -> int:
    """How many tracked generations precede the shard (0 for a shard without tracked parents)."""
    depth, frontier, seen = 0, [shard_id], {shard_id}
    while True:
        parents = [
            p
            for s in frontier
            if s in offsets
            for p in offsets[s].parents
            if p in offsets and p not in seen
        ]
        if not parents:
            return depth
        seen.update(parents)
        frontier, depth = parents, depth + 1


def split_budget(total: int | None, caps: Sequence[int], rotation: int = 0) -> list[int]:
    """How many records each of these shards may read now: an equal share of `total` (None:
    no batch cap), the remainder going to shards picked by `rotation` so that none starves when
    the cap is smaller than the number of shards; never more than the shard's own cap."""
    if total is None:
        return list(caps)
    if not caps:
        return []
    base, extra = divmod(max(total, 0), len(caps))
    return [
        min(cap, base + (1 if (index - rotation) % len(caps) < extra else 0))
        for index, cap in enumerate(caps)
    ]


def _range_bounds(start: ShardOffset, end: ShardOffset) -> tuple[int | None, int]:
    """Inclusive integer bounds of the sequence numbers in (start, end]; the lower bound is
    None when the start is not a sequence number (TRIM_HORIZON, AT_TIMESTAMP)."""
    assert end.sequence_number is not None
    upper = int(end.sequence_number) - (1 if end.kind == "AT_SEQUENCE_NUMBER" else 0)
    lower: int | None = None
    if start.sequence_number is not None:
        lower = int(start.sequence_number) + (1 if start.kind == "AFTER_SEQUENCE_NUMBER" else 0)
    return lower, upper


def range_is_empty(start: ShardOffset, end: ShardOffset) -> bool:
    """Whether (start, end] holds no record. An end that has read nothing, and a LATEST start
    (whose first batch only locates the first record), hold none by construction."""
    if not end.has_read or start.kind == "LATEST":
        return True
    lower, upper = _range_bounds(start, end)
    return lower is not None and lower > upper


def past_end(sequence_number: str, end: ShardOffset) -> bool:
    """Whether a record lies beyond the range that ends at `end`."""
    assert end.sequence_number is not None
    if end.kind == "AT_SEQUENCE_NUMBER":
        return int(sequence_number) >= int(end.sequence_number)
    return int(sequence_number) > int(end.sequence_number)


def at_end(sequence_number: str, end: ShardOffset) -> bool:
    """Whether a record is the last one of the range that ends at `end`."""
    return end.kind == "AFTER_SEQUENCE_NUMBER" and int(sequence_number) == int(
        end.sequence_number or -1
    )


def backoff_delays_ms(
    retries: int, base_ms: float, cap_ms: float, rand: Callable[[], float] = random.random
) -> list[float]:
    """The waits before each retry: exponential from `base_ms`, capped at `cap_ms`, with "equal
    jitter" (half fixed, half random) so that throttled readers spread out but always back off."""
    delays = []
    for attempt in range(retries):
        ceiling = min(cap_ms, base_ms * 2**attempt)
        delays.append(ceiling / 2 + rand() * ceiling / 2)
    return delays


@dataclass(frozen=True)
class KinesisOptions:
    """The source's options, parsed and checked (names: the `OPT_*` constants)."""

    stream_name: str
    endpoint_url: str | None = None
    region: str | None = None
    starting_position: StartingPosition | None = None  # None: LATEST (stream), TRIM_HORIZON
    max_records_per_shard: int = DEFAULT_MAX_FETCH_RECORDS_PER_SHARD
    max_records_per_batch: int | None = None
    records_per_fetch: int = DEFAULT_RECORDS_PER_FETCH
    fetch_interval_ms: int = DEFAULT_FETCH_INTERVAL_MS
    client_num_retries: int = DEFAULT_CLIENT_NUM_RETRIES
    client_retry_interval_ms: int = DEFAULT_CLIENT_RETRY_INTERVAL_MS
    client_max_retry_interval_ms: int = DEFAULT_CLIENT_MAX_RETRY_INTERVAL_MS
    fail_on_data_loss: bool = False
    reader_threads: int = DEFAULT_CHECK_NEW_RECORD_THREADS
    access_key_id: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    def stream_start(self) -> StartingPosition:
        return self.starting_position or parse_starting_position(DEFAULT_STARTING_POSITION)


def parse_options(options: Mapping[str, str]) -> KinesisOptions:
    """Options as Spark passes them (case-insensitive names) → `KinesisOptions`."""
    lowered = {str(k).lower(): str(v) for k, v in options.items()}

    def text(name: str) -> str | None:
        value = lowered.get(name.lower())
        return value.strip() or None if value is not None else None

    def number(name: str, default: int, minimum: int = 1) -> int:
        value = text(name)
        if value is None:
            return default
        try:
            parsed = int(value)
        except ValueError:
            parsed = minimum - 1
        if parsed < minimum:
            raise KinesisOptionsError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        return parsed

    unknown = sorted(k for k in lowered if k.startswith("kinesis.") and k not in _KNOWN_OPTIONS)
    if unknown:
        log.warning("ignoring Kinesis source options it does not know: %s", unknown)
    stream_name = text(OPT_STREAM_NAME)
    if stream_name is None:
        raise KinesisOptionsError(f"{OPT_STREAM_NAME} is required")
    fail_on_data_loss = (text(OPT_FAIL_ON_DATA_LOSS) or "false").lower()
    if fail_on_data_loss not in ("true", "false"):
        raise KinesisOptionsError(f"{OPT_FAIL_ON_DATA_LOSS}: expected true or false")
    access_key_id, secret_key = text(OPT_ACCESS_KEY_ID), text(OPT_SECRET_KEY)
    if (access_key_id is None) != (secret_key is None):
        raise KinesisOptionsError(f"{OPT_ACCESS_KEY_ID} and {OPT_SECRET_KEY} go together")
    starting = text(OPT_STARTING_POSITION)
    per_batch = text(OPT_MAX_RECORDS_PER_BATCH)
    return KinesisOptions(
        stream_name=stream_name,
        endpoint_url=text(OPT_ENDPOINT_URL),
        region=text(OPT_REGION),
        starting_position=parse_starting_position(starting) if starting else None,
        max_records_per_shard=number(
            OPT_MAX_FETCH_RECORDS_PER_SHARD, DEFAULT_MAX_FETCH_RECORDS_PER_SHARD
        ),
        max_records_per_batch=number(OPT_MAX_RECORDS_PER_BATCH, 0) if per_batch else None,
        records_per_fetch=min(
            number(OPT_RECORDS_PER_FETCH, DEFAULT_RECORDS_PER_FETCH), DEFAULT_RECORDS_PER_FETCH
        ),
        fetch_interval_ms=number(OPT_FETCH_INTERVAL_MS, DEFAULT_FETCH_INTERVAL_MS, minimum=0),
        client_num_retries=number(OPT_CLIENT_NUM_RETRIES, DEFAULT_CLIENT_NUM_RETRIES, 0),
        client_retry_interval_ms=number(
            OPT_CLIENT_RETRY_INTERVAL_MS, DEFAULT_CLIENT_RETRY_INTERVAL_MS, 0
        ),
        client_max_retry_interval_ms=number(
            OPT_CLIENT_MAX_RETRY_INTERVAL_MS, DEFAULT_CLIENT_MAX_RETRY_INTERVAL_MS, 0
        ),
        fail_on_data_loss=fail_on_data_loss == "true",
        reader_threads=number(OPT_CHECK_NEW_RECORD_THREADS, DEFAULT_CHECK_NEW_RECORD_THREADS),
        access_key_id=access_key_id,
        secret_key=secret_key,
        session_token=text(OPT_SESSION_TOKEN),
    )


def source_options(stream: StreamSettings, endpoint_url: str | None) -> tuple[str, dict[str, str]]:
    """The format and options that read `stream` with the configured source.

    `python` → this module's `kinesis` source. `aws-kinesis` → the connector EMR bundles (same
    five columns); it needs an endpoint, so the region's public one is the default, and it caps
    records per shard only, so `max_records_per_batch` becomes its per-shard cap."""
    if stream.starting_position == "AT_TIMESTAMP":
        if not stream.starting_timestamp:
            raise KinesisOptionsError(
                "stream.starting_timestamp is required with starting_position AT_TIMESTAMP"
            )
        starting = f"AT_TIMESTAMP {stream.starting_timestamp}"
        parse_starting_position(starting)  # fail here, not in a Python worker
    else:
        starting = stream.starting_position
    options = {
        OPT_STREAM_NAME: stream.name,
        OPT_REGION: stream.region,
        OPT_STARTING_POSITION: starting,
    }
    if stream.source == "aws-kinesis":
        options[OPT_ENDPOINT_URL] = endpoint_url or f"https://kinesis.{stream.region}.amazonaws.com"
        options[OPT_CONSUMER_TYPE] = "GetRecords"
        options[OPT_MAX_FETCH_RECORDS_PER_SHARD] = str(stream.max_records_per_batch)
        return CONNECTOR_FORMAT, options
    if endpoint_url:
        options[OPT_ENDPOINT_URL] = endpoint_url
    options[OPT_MAX_RECORDS_PER_BATCH] = str(stream.max_records_per_batch)
    return FORMAT, options


# ---------------------------------------------------------------------------------------------
# Adapter: botocore calls (GetRecords over `producer.kinesis_wire`), retries, following iterators.
# ---------------------------------------------------------------------------------------------


def create_client(options: KinesisOptions) -> KinesisClient:
    """A Kinesis client for this process (never at import: readers run in Spark's workers).
    `kinesis.endpointUrl` wins, else botocore honours AWS_ENDPOINT_URL itself. (botocore's own
    session, not boto3's: importing boto3, and s3transfer with it, cost every Python process
    Spark starts for the source ~0.2 s more.)"""
    # One attempt per call: throttling is retried by KinesisApi on its own schedule.
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    try:
        client = botocore.session.Session().create_client(
            "kinesis",
            region_name=options.region,
            endpoint_url=options.endpoint_url,
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=options.secret_key,
            aws_session_token=options.session_token,
            config=config,
        )
        return cast("KinesisClient", client)
    except NoRegionError as exc:
        raise KinesisOptionsError(
            f"{OPT_REGION} is required (or AWS_REGION in the environment)"
        ) from exc


_clients: dict[tuple[str | None, ...], KinesisClient] = {}
_clients_lock = threading.Lock()


def shared_client(options: KinesisOptions) -> KinesisClient:
    """This process's client for the endpoint, region and credentials of `options`, made on
    first use. Spark reuses its Python workers, and building a client costs 0.1-0.2 s (botocore
    loads the service model); botocore clients are thread-safe."""
    key = (
        options.endpoint_url,
        options.region,
        options.access_key_id,
        options.secret_key,
        options.session_token,
    )
    with _clients_lock:
        if key not in _clients:
            _clients[key] = create_client(options)
        return _clients[key]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error_code(exc) in RETRYABLE_ERRORS or status >= 500
    return isinstance(exc, botocore_errors.ConnectionError | botocore_errors.HTTPClientError)


class WireRecord(msgspec.Struct, gc=False):
    """A record of a GetRecords answer, as its JSON has it: `Data` decoded from base64 (by
    msgspec, in C), the arrival time in epoch seconds."""

    SequenceNumber: str
    Data: bytes
    PartitionKey: str | None = None
    ApproximateArrivalTimestamp: float | None = None


class WireChild(msgspec.Struct):
    ShardId: str
    ParentShards: list[str] = msgspec.field(default_factory=list)


class WirePage(msgspec.Struct):
    """A GetRecords answer: the fields the source reads (others are skipped by the decoder)."""

    Records: list[WireRecord] = msgspec.field(default_factory=list)
    NextShardIterator: str | None = None
    MillisBehindLatest: int | None = None
    ChildShards: list[WireChild] | None = None


_decode_page = msgspec.json.Decoder(WirePage).decode


def decode_page(body: bytes) -> WirePage:
    """A GetRecords answer body -> `WirePage`. An answer that is not one (a garbled 2xx) is the
    service's fault: a retryable `InternalFailure`, as botocore would name it."""
    try:
        return _decode_page(body)
    except msgspec.DecodeError as exc:
        snippet = body[:200].decode("utf-8", "replace")
        raise ClientError(
            {"Error": {"Code": "InternalFailure", "Message": f"{exc}: {snippet!r}"}},
            "GetRecords",
        ) from exc


def page_from_answer(answer: Mapping[str, Any]) -> WirePage:
    """A GetRecords answer as boto3 gives it (`Data` bytes, the arrival time a datetime)."""
    records = []
    for record in answer.get("Records") or ():
        arrival = record.get("ApproximateArrivalTimestamp")
        records.append(
            WireRecord(
                record["SequenceNumber"],
                bytes(record["Data"]),
                record.get("PartitionKey"),
                arrival.timestamp() if arrival is not None else None,
            )
        )
    children = answer.get("ChildShards")
    return WirePage(
        records,
        answer.get("NextShardIterator"),
        answer.get("MillisBehindLatest"),
        None
        if children is None
        else [WireChild(c["ShardId"], list(c.get("ParentShards") or ())) for c in children],
    )


@dataclass(frozen=True)
class Page:
    """One GetRecords answer, reduced to what the readers decide on."""

    records: list[WireRecord]
    next_iterator: str | None  # None: the shard is closed and read to its end
    caught_up: bool  # MillisBehindLatest == 0: nothing newer at this moment
    children: list[ShardInfo]


GetRecordsCall = Callable[[str, int], WirePage]


def get_records_call(client: KinesisClient) -> GetRecordsCall:
    """How to call GetRecords (iterator, limit) on `client`.

    A botocore client's goes through `producer.kinesis_wire` (its endpoint, region and credentials,
    one connection pool per client) and the answer is decoded by msgspec into `WireRecord`s:
    botocore's model-driven parsing of a page of thousands of records was most of the reader's
    CPU, and a dict and a datetime per record most of what was left. Any other client (the
    tests' scripted Kinesis) answers GetRecords itself, as boto3 would."""
    if isinstance(client, BaseClient):
        wire: KinesisWire = wire_for(client)
        return lambda iterator, limit: decode_page(wire.get_records_raw(iterator, limit))
    return lambda iterator, limit: page_from_answer(
        client.get_records(ShardIterator=iterator, Limit=limit)
    )


class KinesisApi:
    """The few Kinesis calls the source makes, with retries and errors translated. GetRecords
    takes the lean path (`get_records_call`), the rest botocore."""

    def __init__(
        self,
        client: KinesisClient,
        options: KinesisOptions,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.options = options
        self.stream = options.stream_name
        self.sleep = sleep
        self.rand = rand
        self.monotonic = monotonic
        self._get_records = get_records_call(client)

    def call(self, what: str, request: Callable[[], T]) -> T:
        """`request()` retried on throttling and transient faults."""
        o = self.options
        delays = backoff_delays_ms(
            o.client_num_retries,
            o.client_retry_interval_ms,
            o.client_max_retry_interval_ms,
            self.rand,
        )
        for attempt in range(len(delays) + 1):
            try:
                return request()
            except (ClientError, BotoCoreError) as exc:
                if not _is_retryable(exc):
                    raise
                if attempt == len(delays):
                    raise KinesisThrottledError(
                        f"{what} on stream {self.stream}: still failing after "
                        f"{len(delays)} retries: {exc}"
                    ) from exc
                log.warning("%s on stream %s: %s; retrying", what, self.stream, exc)
                self.sleep(delays[attempt] / 1000)
        raise AssertionError("unreachable")

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        token: str | None = None
        while True:
            # With a NextToken, Kinesis refuses the stream name.
            request: dict[str, Any] = {"NextToken": token} if token else {"StreamName": self.stream}
            try:
                page = self.call("ListShards", partial(self.client.list_shards, **request))
            except ClientError as exc:
                raise KinesisRequestError(f"ListShards on stream {self.stream}: {exc}") from exc
            shards.extend(shard_info(shard) for shard in page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards

    def shard_iterator(self, shard_id: str, offset: ShardOffset) -> str:
        request = {"StreamName": self.stream, "ShardId": shard_id, **iterator_request(offset)}
        try:
            answer = self.call(
                "GetShardIterator", lambda: self.client.get_shard_iterator(**request)
            )
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise KinesisDataLossError(
                    f"shard {shard_id} of stream {self.stream} is gone: {exc}"
                ) from exc
            raise KinesisRequestError(f"GetShardIterator {shard_id}: {exc}") from exc
        return str(answer["ShardIterator"])

    def get_records(self, iterator: str, limit: int) -> WirePage:
        """May raise ClientError ExpiredIteratorException (the cursor renews the iterator)."""
        return self.call("GetRecords", partial(self._get_records, iterator, limit))


class ShardCursor:
    """Follows one shard's records from an offset; renews an expired iterator from the last
    record it returned. Its GetRecords calls start `fetchIntervalMs` apart (from `last_call`,
    when the shard's previous call started, on `api.monotonic`): the time a call takes counts
    towards the interval."""

    def __init__(
        self,
        api: KinesisApi,
        shard_id: str,
        offset: ShardOffset,
        iterator: str | None = None,
        last_call: float | None = None,
    ) -> None:
        self.api = api
        self.shard_id = shard_id
        self.offset = offset  # after the last record returned (or the start)
        self.iterator = iterator
        self.last_call = last_call

    def _pace(self) -> None:
        interval = self.api.options.fetch_interval_ms / 1000
        if self.last_call is not None and interval:
            wait = self.last_call + interval - self.api.monotonic()
            if wait > 0:
                self.api.sleep(wait)

    def next_page(self, limit: int) -> Page:
        self._pace()
        for _ in range(MAX_ITERATOR_RENEWALS):
            if self.iterator is None:
                self.iterator = self.api.shard_iterator(self.shard_id, self.offset)
            try:
                self.last_call = self.api.monotonic()
                answer = self.api.get_records(self.iterator, limit)
                break
            except ClientError as exc:
                if error_code(exc) != "ExpiredIteratorException":
                    raise KinesisRequestError(f"GetRecords {self.shard_id}: {exc}") from exc
                log.info("iterator of %s expired; renewing at %s", self.shard_id, self.offset)
                self.iterator = None
        else:
            raise KinesisRequestError(f"GetRecords {self.shard_id}: iterators keep expiring")
        records = answer.Records
        if records:
            self.offset = self.offset.after(records[-1].SequenceNumber)
        self.iterator = answer.NextShardIterator or None
        children = [
            ShardInfo(child.ShardId, tuple(child.ParentShards))
            for child in answer.ChildShards or ()
        ]
        return Page(
            records=records,
            next_iterator=self.iterator,
            caught_up=not answer.MillisBehindLatest,
            children=children,
        )


@dataclass(frozen=True)
class ReadAhead:
    offset: ShardOffset  # where the batch ends for this shard
    records: int
    iterator: str | None  # resumes exactly at `offset` (None: ask for a new one)
    children: list[ShardInfo]
    # The records read, in order: one Arrow batch (`page_batch`) per page that had records.
    batches: list[Any] = field(default_factory=list)
    last_call: float | None = None  # when its last GetRecords started (`api.monotonic`)


def read_ahead(
    api: KinesisApi,
    shard_id: str,
    offset: ShardOffset,
    budget: int,
    closed: bool,
    iterator: str | None = None,
    last_call: float | None = None,
) -> ReadAhead:
    """Read up to `budget` records of a shard from `offset`; where did that end?

    `closed` (from ListShards) lets an empty page at the tip finish the shard: Kinesis ends a
    closed shard with a null NextShardIterator, moto never does, and both agree a closed shard
    has nothing newer than its tip. `last_call`: when the shard's previous GetRecords started
    (its first call here waits out the rest of the fetch interval)."""
    cursor = ShardCursor(api, shard_id, offset, iterator, last_call)
    count, empty_pages, finished = 0, 0, False
    children: list[ShardInfo] = []
    batches: list[Any] = []
    while count < budget:
        page = cursor.next_page(min(api.options.records_per_fetch, budget - count))
        children.extend(page.children)
        if offset.kind == "LATEST" and page.records:
            # Located the first record since the query's start; it is read in the next batch.
            first = page.records[0].SequenceNumber
            located = ShardOffset("AT_SEQUENCE_NUMBER", first, parents=offset.parents)
            return ReadAhead(located, 0, None, children, last_call=cursor.last_call)
        count += len(page.records)
        if page.records:
            batches.append(page_batch(api.stream, page.records))
        if page.next_iterator is None or (closed and page.caught_up and not page.records):
            finished = True
            break
        if not page.records:
            empty_pages += 1
            if page.caught_up or empty_pages >= MAX_EMPTY_PAGES:
                break
        elif page.caught_up:
            # At the tip when the page was served: the batch ends here. Waiting for an empty
            # page instead never ends on a busy stream (a producer putting every 100 ms fills
            # every page 200 ms apart), and no batch would ever be planned. Records put since,
            # or in the same millisecond (which also reads as "0 behind"), are the next batch's.
            break
    end = replace(cursor.offset, finished=True) if finished else cursor.offset
    iterator = None if finished else cursor.iterator
    return ReadAhead(end, count, iterator, children, batches, cursor.last_call)


# `schemas.RAW_KINESIS_RECORD` in Arrow, as Spark's Arrow conversion types it.
ARROW_SCHEMA = to_arrow_schema(RAW_KINESIS_RECORD)
_ARRIVAL_TYPE = ARROW_SCHEMA.field("approximateArrivalTimestamp").type


def page_batch(stream: str, records: Sequence[WireRecord]) -> Any:
    """Records as one `pyarrow.RecordBatch` of `ARROW_SCHEMA`.

    A Python data source may yield Arrow batches instead of tuples; Spark then takes the columns
    as they are, and the batch travels with its partition as a few buffers, not as a pickled
    tuple per record. Each column is assembled from its buffers (`_column`): `pyarrow.array`
    would import pandas (~0.4 s) in the driver-side process that runs the read-ahead, once per
    query. Arrival times become microseconds rounded half to even, as `datetime.fromtimestamp`
    rounds (Kinesis gives milliseconds)."""
    keys = [r.PartitionKey for r in records]
    arrivals = [r.ApproximateArrivalTimestamp for r in records]
    if None in keys or None in arrivals:  # never from Kinesis itself
        return _page_batch_with_nulls(stream, records, keys, arrivals)
    count = len(records)
    name = stream.encode()
    stream_offsets = array("i", range(0, (count + 1) * len(name), len(name)))
    micros = array("q", [round(seconds * 1_000_000) for seconds in arrivals])  # type: ignore[operator]
    return pa.RecordBatch.from_arrays(
        [
            _column(pa.binary(), [r.Data for r in records]),
            pa.Array.from_buffers(
                pa.string(), count, [None, pa.py_buffer(stream_offsets), pa.py_buffer(name * count)]
            ),
            _column(pa.string(), [key.encode() for key in keys]),  # type: ignore[union-attr]
            _column(pa.string(), [r.SequenceNumber.encode() for r in records]),
            pa.Array.from_buffers(_ARRIVAL_TYPE, count, [None, pa.py_buffer(micros)]),
        ],
        schema=ARROW_SCHEMA,
    )


def _column(arrow_type: Any, values: Sequence[bytes]) -> Any:
    """A binary or string Arrow array of `values` (no nulls; UTF-8 for strings): the offsets
    and the values, each one buffer."""
    offsets = array("i", accumulate(map(len, values), initial=0))
    return pa.Array.from_buffers(
        arrow_type, len(values), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))]
    )


def _page_batch_with_nulls(
    stream: str,
    records: Sequence[WireRecord],
    keys: Sequence[str | None],
    arrivals: Sequence[float | None],
) -> Any:
    """`page_batch` for records missing a partition key or an arrival time (a scripted
    Kinesis's): through `pyarrow.array`, which takes nulls."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array([r.Data for r in records], pa.binary()),
            pa.array([stream] * len(records), pa.string()),
            pa.array(keys, pa.string()),
            pa.array([r.SequenceNumber for r in records], pa.string()),
            pa.array(
                [None if t is None else round(t * 1_000_000) for t in arrivals], pa.int64()
            ).cast(_ARRIVAL_TYPE),
        ],
        schema=ARROW_SCHEMA,
    )


def replay_range(
    api: KinesisApi, shard_id: str, start: ShardOffset, end: ShardOffset
) -> Iterator[Any]:
    """Exactly the records in (start, end] of a shard, in sequence order, as Arrow batches."""
    if range_is_empty(start, end):
        return
    cursor = ShardCursor(api, shard_id, start)
    while True:
        page = cursor.next_page(api.options.records_per_fetch)
        records = page.records
        keep, done = len(records), False
        for index, record in enumerate(records):
            if past_end(record.SequenceNumber, end):
                keep, done = index, True
                break
            if at_end(record.SequenceNumber, end):
                keep, done = index + 1, True
                break
        if keep:
            yield page_batch(api.stream, records[:keep])
        if done:
            return
        if page.next_iterator is None or (page.caught_up and not page.records):
            # The tip, short of the range's end: the records were there when the batch was
            # planned, so they have been trimmed since.
            message = (
                f"shard {shard_id} of stream {api.stream} ends at {cursor.offset.to_json()} "
                f"before the batch's end {end.to_json()}: records were trimmed"
            )
            if api.options.fail_on_data_loss:
                raise KinesisDataLossError(message)
            log.warning(message)
            return


def read_to_tip(api: KinesisApi, shard_id: str, start: ShardOffset) -> Iterator[Any]:
    """Every record of a shard from `start` to its present tip (static reads), as Arrow
    batches."""
    if start.kind == "LATEST":
        return
    cursor = ShardCursor(api, shard_id, start)
    empty_pages = 0
    while True:
        page = cursor.next_page(api.options.records_per_fetch)
        if page.records:
            yield page_batch(api.stream, page.records)
        if page.next_iterator is None or (page.caught_up and not page.records):
            return
        empty_pages = 0 if page.records else empty_pages + 1
        if empty_pages >= MAX_EMPTY_PAGES:
            return


# ---------------------------------------------------------------------------------------------
# The Spark data source.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardRange(InputPartition):
    """One shard's records for one batch: (start, end]; `end` None reads to the tip."""

    shard_id: str
    start: ShardOffset
    end: ShardOffset | None
    # The range's records, as Arrow batches, when the read-ahead that planned it still had
    # them: the batch then reads no record twice. None: read them from the stream (a restarted
    # query's replay).
    batches: tuple[Any, ...] | None = None


class KinesisDataSource(DataSource):
    """`spark.read/readStream.format("kinesis")`; options: the `OPT_*` names."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        self.kinesis_options = parse_options(options)  # bad options fail at load(), here

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        return RAW_KINESIS_RECORD

    def streamReader(self, schema: StructType) -> KinesisStreamReader:  # noqa: N802
        return KinesisStreamReader(self.kinesis_options)

    def reader(self, schema: StructType) -> KinesisBatchReader:
        return KinesisBatchReader(self.kinesis_options)


class _KinesisReaderBase:
    def __init__(
        self,
        options: KinesisOptions,
        client_factory: Callable[[KinesisOptions], KinesisClient] = shared_client,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Nothing here touches the network: Spark builds readers in every worker.
        self.options = options
        self._client_factory = client_factory
        self._sleep = sleep
        self._monotonic = monotonic
        self._api: KinesisApi | None = None

    @property
    def api(self) -> KinesisApi:
        if self._api is None:
            client = self._client_factory(self.options)
            self._api = KinesisApi(client, self.options, self._sleep, monotonic=self._monotonic)
        return self._api

    def release(self) -> None:
        # The client is the process's (`shared_client`): only forget it.
        self._api = None


class KinesisStreamReader(_KinesisReaderBase, DataSourceStreamReader):
    """Micro-batches of a Kinesis stream; see the module docstring.

    Spark keeps one instance per query in a driver-side worker (offsets, planning) and builds
    fresh ones in executors to `read()` partitions."""

    def __init__(
        self,
        options: KinesisOptions,
        client_factory: Callable[[KinesisOptions], KinesisClient] = shared_client,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(options, client_factory, sleep, monotonic)
        self._clock = clock
        self._fetched_at: dict[str, float] = {}  # shard -> when its last GetRecords started
        self._initial: Offsets | None = None
        self._position: Offsets | None = None  # where the next batch starts
        self._iterators: dict[str, tuple[ShardOffset, str]] = {}  # resume without asking
        # shard -> (start, end, Arrow batches) of the latest read-ahead, for the batch it plans.
        self._read: dict[str, tuple[ShardOffset, ShardOffset, list[Any]]] = {}
        self._rotation = 0

    def initialOffset(self) -> dict[str, Any]:  # noqa: N802
        return offsets_to_json(self._initial_offsets())

    def _initial_offsets(self) -> Offsets:
        # Computed once per query: Spark may ask before or after the first latestOffset().
        if self._initial is None:
            now_ms = int(self._clock() * 1000)
            start = self.options.stream_start()
            self._initial = initial_offsets(self.api.list_shards(), start, now_ms)
        return self._initial

    def latestOffset(self) -> dict[str, Any]:  # noqa: N802
        start = self._position if self._position is not None else self._initial_offsets()
        end = self.advance(start)
        self._position = end
        return offsets_to_json(end)

    def advance(self, start: Offsets) -> Offsets:
        """The end of the batch that starts at `start`: each readable shard read ahead, in
        parallel, within the per-shard and per-batch caps (see `read_ahead`)."""
        listed = self.api.list_shards()
        offsets, lost = discover_shards(start, listed)
        for shard_id in lost:
            message = f"shard {shard_id} of stream {self.options.stream_name} expired unread"
            if self.options.fail_on_data_loss:
                raise KinesisDataLossError(message)
            log.warning(message)
        closed = {shard.shard_id for shard in listed if shard.closed}
        # Judged before reading: children wait for a batch after the one that finishes their
        # parents, which keeps each partition key's records in order across batches.
        active = readable_shards(offsets)
        counts = dict.fromkeys(active, 0)
        starts = {shard_id: offsets[shard_id] for shard_id in active}
        read: dict[str, list[Any]] = {shard_id: [] for shard_id in active}
        remaining = self.options.max_records_per_batch
        self._rotation += 1
        while active:
            caps = [self.options.max_records_per_shard - counts[s] for s in active]
            budgets = dict(zip(active, split_budget(remaining, caps, self._rotation), strict=True))
            jobs = [s for s in active if budgets[s] > 0]
            if not jobs:
                break
            results = self._read_ahead_all([(s, offsets[s], budgets[s], s in closed) for s in jobs])
            for shard_id, result in zip(jobs, results, strict=True):
                offsets[shard_id] = result.offset
                counts[shard_id] += result.records
                read[shard_id].extend(result.batches)
                if result.iterator is not None:
                    self._iterators[shard_id] = (result.offset, result.iterator)
                for child in result.children:  # Kinesis names them before ListShards may
                    offsets.setdefault(child.shard_id, ShardOffset.trim_horizon(child.parents))
            if remaining is None:
                break  # every shard had its full cap
            remaining -= sum(result.records for result in results)
            # Budget left by quiet shards goes to those that filled their share.
            active = [
                s
                for s, result in zip(jobs, results, strict=True)
                if result.records == budgets[s] and result.iterator is not None
            ]
            if remaining <= 0:
                break
        self._read = {
            shard_id: (starts[shard_id], offsets[shard_id], rows)
            for shard_id, rows in read.items()
            if starts[shard_id].kind != "LATEST"  # locating the start reads nothing to keep
        }
        return offsets

    def _read_ahead_all(
        self, jobs: Sequence[tuple[str, ShardOffset, int, bool]]
    ) -> list[ReadAhead]:
        def one(job: tuple[str, ShardOffset, int, bool]) -> ReadAhead:
            shard_id, offset, budget, closed = job
            cached = self._iterators.get(shard_id)
            iterator = cached[1] if cached and cached[0] == offset else None
            last_call = self._fetched_at.get(shard_id)
            try:
                result = read_ahead(self.api, shard_id, offset, budget, closed, iterator, last_call)
            except BaseException:
                self._fetched_at[shard_id] = self._monotonic()  # a call may have gone out
                raise
            if result.last_call is not None:
                self._fetched_at[shard_id] = result.last_call
            return result

        # Iterators are used once: whatever happens, the old ones are spent.
        for shard_id, *_ in jobs:
            self._iterators.pop(shard_id, None)
        if len(jobs) == 1:
            return [one(jobs[0])]
        with ThreadPoolExecutor(min(len(jobs), self.options.reader_threads)) as pool:
            return list(pool.map(one, jobs))

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        start_offsets, end_offsets = offsets_from_json(start), offsets_from_json(end)
        if self._position is None:
            # A restarted query: Spark announces its last planned offset this way first.
            self._position = end_offsets
        read, self._read = self._read, {}
        planned = []
        for shard_range in plan_partitions(start_offsets, end_offsets):
            kept = read.get(shard_range.shard_id)
            if kept is not None and (kept[0], kept[1]) == (shard_range.start, shard_range.end):
                shard_range = replace(shard_range, batches=tuple(kept[2]))
            planned.append(shard_range)
        return planned

    def read(self, partition: InputPartition) -> Iterator[Any]:
        """The partition's records as Arrow batches (`page_batch`)."""
        assert isinstance(partition, ShardRange)
        assert partition.end is not None
        if partition.batches is not None:
            yield from partition.batches
            return
        yield from replay_range(self.api, partition.shard_id, partition.start, partition.end)

    def commit(self, end: dict[str, Any]) -> None:
        """Nothing to release: Spark's offset log is the checkpoint and Kinesis keeps records
        for its retention period whatever a consumer does."""

    def stop(self) -> None:
        self._iterators.clear()
        self._read.clear()
        self._fetched_at.clear()
        self.release()


def plan_partitions(start: Offsets, end: Offsets) -> list[ShardRange]:
    """One partition per shard with records in (start, end]; a shard new in `end` started at
    TRIM_HORIZON (children of a reshard; at query start every shard is in `start`)."""
    ranges = []
    for shard_id in sorted(end):
        first = start.get(shard_id) or ShardOffset.trim_horizon(end[shard_id].parents)
        if not range_is_empty(first, end[shard_id]):
            ranges.append(ShardRange(shard_id, first, end[shard_id]))
    return ranges


class KinesisBatchReader(_KinesisReaderBase, DataSourceReader):
    """`spark.read.format("kinesis")`: every shard from `kinesis.startingPosition` (default
    TRIM_HORIZON) to its tip when the task reads it. For tests and backtests."""

    def partitions(self) -> Sequence[InputPartition]:
        start = self.options.starting_position or StartingPosition("TRIM_HORIZON")
        offsets = initial_offsets(self.api.list_shards(), start, int(time.time() * 1000))
        return [ShardRange(shard_id, offsets[shard_id], None) for shard_id in sorted(offsets)]

    def read(self, partition: InputPartition) -> Iterator[Any]:
        """The partition's records as Arrow batches (`page_batch`)."""
        assert isinstance(partition, ShardRange)
        yield from read_to_tip(self.api, partition.shard_id, partition.start)


# ---------------------------------------------------------------------------------------------
# What the jobs call.
# ---------------------------------------------------------------------------------------------


def read_stream(
    spark: SparkSession, settings: JobSettings, options: Mapping[str, str] | None = None
) -> DataFrame:
    """The trades stream as raw Kinesis records (`schemas.RAW_KINESIS_RECORD`), from the source
    `settings.stream.source` names; the job code is the same for both.

    - `python` (default, local): this module's source, registered here as format `kinesis`.
    - `aws-kinesis` (EMR): the awslabs connector, bundled with EMR 7.1+ (emr-spark-8.0.0
      included) but not on the classpath by default: submit with `--jars
      /usr/share/aws/kinesis/spark-sql-kinesis/lib/spark-streaming-sql-kinesis-connector.jar`.
      The job role needs kinesis:DescribeStreamSummary, ListShards, GetShardIterator and
      GetRecords on the stream; the connector keeps its own shard metadata beside the checkpoint
      (HDFS/S3, its default) and does not support Trigger.AvailableNow.

    The endpoint is `stream.endpoint_url`, else AWS_ENDPOINT_URL as the driver sees it, handed to
    the workers as an option: a Python worker's environment is the JVM's, fixed when the session
    started. Credentials are not copied (they may expire); the workers use botocore's chain (the
    instance role on EMR). `options` are added last (tuning, or credentials in tests).
    """
    stream = settings.stream
    endpoint_url = stream.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    source_format, source = source_options(stream, endpoint_url)
    if source_format == FORMAT:
        spark.dataSource.register(KinesisDataSource)
    return spark.readStream.format(source_format).options(**{**source, **(options or {})}).load()


def read_batch(
    spark: SparkSession, settings: JobSettings, options: Mapping[str, str] | None = None
) -> DataFrame:
    """What the stream holds now, as a static DataFrame (python source only), from
    `stream.starting_position` (LATEST reads nothing) to each shard's tip."""
    stream = settings.stream.model_copy(update={"source": "python"})
    endpoint_url = stream.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    _, source = source_options(stream, endpoint_url)
    spark.dataSource.register(KinesisDataSource)
    return spark.read.format(FORMAT).options(**{**source, **(options or {})}).load()
