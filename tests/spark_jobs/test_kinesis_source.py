"""The Kinesis source: pure pieces without the network, the adapter against a scripted client
that behaves like the real service where moto does not, the reader against the local endpoint,
and streaming queries on the shared SparkSession.

Spark's Python workers see the environment the JVM started with, not `aws_env`'s later changes,
so the queries get endpoint, region and (moto's dummy) credentials as options.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.utils import StreamingQueryException

from devstack.aws import LOCAL_CREDENTIALS, REPO_ROOT, free_port
from devstack.provision import ensure_stream
from spark_jobs.common import schemas
from spark_jobs.common.kinesis_source import (
    ARROW_SCHEMA,
    CONNECTOR_FORMAT,
    FORMAT,
    KinesisApi,
    KinesisDataLossError,
    KinesisDataSource,
    KinesisOffsetError,
    KinesisOptions,
    KinesisOptionsError,
    KinesisStreamReader,
    KinesisThrottledError,
    ShardInfo,
    ShardOffset,
    ShardRange,
    StartingPosition,
    backoff_delays_ms,
    decode_page,
    discover_shards,
    initial_offsets,
    iterator_request,
    offsets_from_json,
    offsets_to_json,
    page_batch,
    page_from_answer,
    parse_options,
    parse_starting_position,
    plan_partitions,
    range_is_empty,
    read_ahead,
    read_stream,
    readable_shards,
    replay_range,
    source_options,
    split_budget,
)
from spark_jobs.common.settings import JobSettings, StreamSettings

REGION = LOCAL_CREDENTIALS["AWS_REGION"]
TH = ShardOffset.trim_horizon()


def after(seq: str, *, finished: bool = False, parents: tuple[str, ...] = ()) -> ShardOffset:
    return ShardOffset("AFTER_SEQUENCE_NUMBER", seq, parents=parents, finished=finished)


def at_seq(seq: str) -> ShardOffset:
    return ShardOffset("AT_SEQUENCE_NUMBER", seq)


# ---------------------------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------------------------


def test_offsets_round_trip_through_json_in_canonical_form() -> None:
    offsets = {
        "shardId-000000000002": ShardOffset.trim_horizon(["shardId-000000000000"]),
        "shardId-000000000000": after(
            "49590338271490256608559692538361571095921575989136588898", finished=True
        ),
        "shardId-000000000001": ShardOffset("LATEST", timestamp_ms=1_700_000_000_000),
        "shardId-000000000003": ShardOffset("AT_TIMESTAMP", timestamp_ms=1_700_000_000_123),
        "shardId-000000000004": at_seq("7"),
    }
    encoded = offsets_to_json(offsets)
    assert list(encoded) == sorted(offsets)  # Spark compares offsets as JSON strings
    assert encoded["shardId-000000000000"] == {
        "after": "49590338271490256608559692538361571095921575989136588898",
        "finished": True,
    }
    assert encoded["shardId-000000000002"] == {
        "at": "TRIM_HORIZON",
        "parents": ["shardId-000000000000"],
    }
    assert encoded["shardId-000000000001"] == {"at": "LATEST", "since_ms": 1_700_000_000_000}
    assert encoded["shardId-000000000003"] == {"at_timestamp_ms": 1_700_000_000_123}
    assert encoded["shardId-000000000004"] == {"at_sequence": "7"}
    assert offsets_from_json(json.loads(json.dumps(encoded))) == offsets


@pytest.mark.parametrize(
    "position",
    [{"after": 12}, {"at": "SOMEWHERE"}, {"at": "LATEST"}, {"after": "1", "finished": "yes"}, []],
)
def test_foreign_offsets_are_refused(position: Any) -> None:
    with pytest.raises(KinesisOffsetError):
        offsets_from_json({"shardId-000000000000": position})


def test_iterator_requests_resume_exactly_where_the_offset_says() -> None:
    assert iterator_request(after("5")) == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "5",
    }
    assert iterator_request(at_seq("5")) == {
        "ShardIteratorType": "AT_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "5",
    }
    assert iterator_request(TH) == {"ShardIteratorType": "TRIM_HORIZON"}
    moment = datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    stamp_ms = int(moment.timestamp() * 1000)
    for kind in ("AT_TIMESTAMP", "LATEST"):  # LATEST replays as AT_TIMESTAMP at its start
        assert iterator_request(ShardOffset(kind, timestamp_ms=stamp_ms)) == {  # type: ignore[arg-type]
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": moment,
        }


@pytest.mark.parametrize(
    ("start", "end", "empty"),
    [
        (TH, after("3"), False),
        (after("3"), after("3"), True),
        (after("3"), after("4"), False),
        (after("3"), after("3", finished=True), True),  # only the shard's end was found
        (TH, ShardOffset.trim_horizon(), True),
        (TH, ShardOffset("TRIM_HORIZON", finished=True), True),  # an empty closed shard
        (ShardOffset("LATEST", timestamp_ms=1), at_seq("9"), True),  # only located the start
        (at_seq("9"), after("9"), False),
        (at_seq("9"), at_seq("9"), True),
        (ShardOffset("AT_TIMESTAMP", timestamp_ms=1), after("1"), False),
    ],
)
def test_range_emptiness(start: ShardOffset, end: ShardOffset, empty: bool) -> None:
    assert range_is_empty(start, end) is empty


def test_partitions_one_per_shard_with_records_and_new_shards_from_trim_horizon() -> None:
    start = {"s0": after("3"), "s1": after("8"), "gone": after("1", finished=True)}
    end = {"s0": after("6"), "s1": after("8"), "s2": after("2", parents=("s0",))}
    assert plan_partitions(start, end) == [
        ShardRange("s0", after("3"), after("6")),
        ShardRange("s2", ShardOffset.trim_horizon(["s0"]), after("2", parents=("s0",))),
    ]


def test_backoff_is_exponential_capped_and_jittered_within_bounds() -> None:
    assert backoff_delays_ms(6, 100, 1_000, rand=lambda: 1.0) == [100, 200, 400, 800, 1000, 1000]
    assert backoff_delays_ms(6, 100, 1_000, rand=lambda: 0.0) == [50, 100, 200, 400, 500, 500]
    assert backoff_delays_ms(0, 100, 1_000) == []


def test_budget_is_shared_fairly_and_rotates_the_remainder() -> None:
    assert split_budget(None, [5, 5]) == [5, 5]
    assert split_budget(7, [100, 100]) == [4, 3]
    assert split_budget(7, [100, 100], rotation=1) == [3, 4]
    assert split_budget(7, [2, 100]) == [2, 3]  # the per-shard cap holds
    assert sum(split_budget(1, [9, 9, 9], rotation=r).count(1) for r in range(3)) == 3
    assert split_budget(0, [9, 9]) == [0, 0]


def test_lineage_orders_parents_before_children() -> None:
    split = {
        "p": after("9"),
        "c1": ShardOffset.trim_horizon(["p"]),
        "c2": ShardOffset.trim_horizon(["p"]),
        "other": TH,
    }
    assert readable_shards(split) == ["other", "p"]
    split["p"] = after("9", finished=True)
    assert readable_shards(split) == ["other", "c1", "c2"]  # older generations first
    merged = {
        "a": after("1", finished=True),
        "b": after("2"),
        "m": ShardOffset.trim_horizon(["a", "b"]),
    }
    assert readable_shards(merged) == ["b"]  # a merge waits for both parents
    assert readable_shards({"m": ShardOffset.trim_horizon(["expired"])}) == ["m"]


def test_discovery_adds_children_and_drops_expired_shards() -> None:
    offsets = {"done": after("5", finished=True), "open": after("7"), "lost": after("1")}
    listed = [ShardInfo("open"), ShardInfo("child", ("open",))]
    merged, lost = discover_shards(offsets, listed)
    assert merged == {"open": after("7"), "child": ShardOffset.trim_horizon(["open"])}
    assert lost == ["lost"]


def test_initial_offsets_per_starting_position() -> None:
    shards = [ShardInfo("p", closed=True), ShardInfo("c", ("p",))]
    assert initial_offsets(shards, StartingPosition("TRIM_HORIZON"), 0) == {
        "p": TH,
        "c": ShardOffset.trim_horizon(["p"]),
    }
    assert initial_offsets(shards, StartingPosition("LATEST"), 42) == {
        "c": ShardOffset("LATEST", timestamp_ms=42, parents=("p",))
    }
    assert initial_offsets(shards, StartingPosition("AT_TIMESTAMP", 7), 42)["p"] == ShardOffset(
        "AT_TIMESTAMP", timestamp_ms=7
    )


def test_starting_positions_in_the_connectors_syntax() -> None:
    assert parse_starting_position("trim_horizon") == StartingPosition("TRIM_HORIZON")
    assert parse_starting_position("EARLIEST") == StartingPosition("TRIM_HORIZON")
    assert parse_starting_position("LATEST") == StartingPosition("LATEST")
    assert parse_starting_position("AT_TIMESTAMP 2023-08-30T19:00:05Z") == StartingPosition(
        "AT_TIMESTAMP", 1_693_422_005_000
    )
    assert parse_starting_position("AT_TIMESTAMP 2023-08-30T19:00:05.5-08:00") == (
        StartingPosition("AT_TIMESTAMP", 1_693_450_805_500)
    )
    for bad in ("", "AT_TIMESTAMP", "AT_TIMESTAMP yesterday", "LATEST now", "SOON"):
        with pytest.raises(KinesisOptionsError, match=r"kinesis\.startingPosition"):
            parse_starting_position(bad)


def test_options_defaults_names_and_errors() -> None:
    options = parse_options({"KINESIS.STREAMNAME": "trades"})  # Spark's names are caseless
    assert options == KinesisOptions(stream_name="trades")
    assert options.stream_start() == StartingPosition("LATEST")  # the connector's default
    assert (options.max_records_per_shard, options.max_records_per_batch) == (100_000, None)
    tuned = parse_options(
        {
            "kinesis.streamName": "trades",
            "kinesis.maxRecordsPerBatch": "500",
            "kinesis.maxFetchRecordsPerShard": "200",
            "kinesis.getRecords.numberOfRecordsPerFetch": "50000",
            "kinesis.getRecords.fetchIntervalMs": "0",
            "kinesis.failOnDataLoss": "true",
        }
    )
    assert (tuned.max_records_per_batch, tuned.max_records_per_shard) == (500, 200)
    assert tuned.records_per_fetch == 10_000  # GetRecords' own limit
    assert (tuned.fetch_interval_ms, tuned.fail_on_data_loss) == (0, True)
    with pytest.raises(KinesisOptionsError, match=r"kinesis\.streamName"):
        parse_options({})
    with pytest.raises(KinesisOptionsError, match=r"kinesis\.maxRecordsPerBatch"):
        parse_options({"kinesis.streamName": "t", "kinesis.maxRecordsPerBatch": "0"})
    with pytest.raises(KinesisOptionsError, match="go together"):
        parse_options({"kinesis.streamName": "t", "kinesis.awsAccessKeyId": "AKIA"})
    assert "secret" not in repr(
        parse_options(
            {
                "kinesis.streamName": "t",
                "kinesis.awsAccessKeyId": "a",
                "kinesis.awsSecretKey": "secret",
            }
        )
    )


def test_unknown_options_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        parse_options({"kinesis.streamName": "t", "kinesis.maxRecordPerBatch": "5"})
    assert "kinesis.maxrecordperbatch" in caplog.text  # a typo must not pass silently


def test_settings_map_to_either_source_with_the_same_columns() -> None:
    stream = StreamSettings(name="trades", region="eu-west-1", max_records_per_batch=500)
    assert source_options(stream, "http://127.0.0.1:5000") == (
        FORMAT,
        {
            "kinesis.streamName": "trades",
            "kinesis.region": "eu-west-1",
            "kinesis.startingPosition": "TRIM_HORIZON",
            "kinesis.endpointUrl": "http://127.0.0.1:5000",
            "kinesis.maxRecordsPerBatch": "500",
        },
    )
    emr = stream.model_copy(
        update={
            "source": "aws-kinesis",
            "starting_position": "AT_TIMESTAMP",
            "starting_timestamp": "2026-01-01T00:00:00Z",
        }
    )
    assert source_options(emr, None) == (
        CONNECTOR_FORMAT,
        {
            "kinesis.streamName": "trades",
            "kinesis.region": "eu-west-1",
            "kinesis.startingPosition": "AT_TIMESTAMP 2026-01-01T00:00:00Z",
            "kinesis.endpointUrl": "https://kinesis.eu-west-1.amazonaws.com",
            "kinesis.consumerType": "GetRecords",
            "kinesis.maxFetchRecordsPerShard": "500",
        },
    )
    with pytest.raises(KinesisOptionsError, match="starting_timestamp"):
        source_options(stream.model_copy(update={"starting_position": "AT_TIMESTAMP"}), None)


# ---------------------------------------------------------------------------------------------
# The adapter against a scripted client: Kinesis' own behaviour where moto differs
# ---------------------------------------------------------------------------------------------


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetRecords",
    )


class ScriptedKinesis:
    """A stream as the service behaves: sparse 56-digit sequence numbers; the page that reaches
    a closed shard's end has no NextShardIterator and names the ChildShards; MillisBehindLatest
    is 0 at the tip. `failures` are raised by the next GetRecords calls, in order."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.parents: dict[str, list[str]] = {}
        self.closed: set[str] = set()
        self.failures: list[ClientError] = []
        self.expired: set[str] = set()
        self.iterator_requests: list[dict[str, Any]] = []
        self._next_seq = 49_590_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000

    def add_shard(self, shard_id: str, parents: tuple[str, ...] = ()) -> None:
        self.records[shard_id] = []
        self.parents[shard_id] = list(parents)

    def put(self, shard_id: str, *payloads: str) -> list[str]:
        seqs = []
        for payload in payloads:
            self._next_seq += 1_000_003  # sparse, increasing: not consecutive integers
            seqs.append(str(self._next_seq))
            self.records[shard_id].append(
                {
                    "SequenceNumber": seqs[-1],
                    "Data": payload.encode(),
                    "PartitionKey": payload.split("-")[0],
                    "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
                }
            )
        return seqs

    def list_shards(self, **_: Any) -> dict[str, Any]:
        shards = []
        for shard_id, parents in self.parents.items():
            shard: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": {}}
            if parents:
                shard["ParentShardId"] = parents[0]
            if len(parents) > 1:
                shard["AdjacentParentShardId"] = parents[1]
            if shard_id in self.closed:
                shard["SequenceNumberRange"]["EndingSequenceNumber"] = "9" * 56
            shards.append(shard)
        return {"Shards": shards}

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        self.iterator_requests.append(request)
        shard, kind = request["ShardId"], request["ShardIteratorType"]
        seqs = [int(r["SequenceNumber"]) for r in self.records[shard]]
        if kind == "TRIM_HORIZON":
            index = 0
        elif kind == "AFTER_SEQUENCE_NUMBER":
            index = sum(s <= int(request["StartingSequenceNumber"]) for s in seqs)
        elif kind == "AT_SEQUENCE_NUMBER":
            index = sum(s < int(request["StartingSequenceNumber"]) for s in seqs)
        else:
            raise AssertionError(f"unscripted iterator type {kind}")
        return {"ShardIterator": f"{shard}|{index}|{uuid.uuid4().hex[:6]}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        if self.failures:
            raise self.failures.pop(0)
        if ShardIterator in self.expired:
            raise client_error("ExpiredIteratorException")
        shard, index_text, _ = ShardIterator.split("|")
        index = int(index_text)
        records = self.records[shard][index : index + Limit]
        position = index + len(records)
        answer: dict[str, Any] = {
            "Records": records,
            "MillisBehindLatest": 0 if position >= len(self.records[shard]) else 5_000,
            "NextShardIterator": f"{shard}|{position}|{uuid.uuid4().hex[:6]}",
        }
        if shard in self.closed and position >= len(self.records[shard]):
            del answer["NextShardIterator"]
            answer["ChildShards"] = [
                {"ShardId": child, "ParentShards": parents, "HashKeyRange": {}}
                for child, parents in self.parents.items()
                if shard in parents
            ]
        return answer

    def close(self) -> None:
        pass


def scripted_reader(
    kinesis: ScriptedKinesis, sleeps: list[float] | None = None, **options: str
) -> KinesisStreamReader:
    parsed = parse_options(
        {
            "kinesis.streamName": "trades",
            "kinesis.startingPosition": "TRIM_HORIZON",
            "kinesis.getRecords.fetchIntervalMs": "0",
            **options,
        }
    )
    record_sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return KinesisStreamReader(parsed, lambda _: kinesis, sleep=record_sleep)  # type: ignore[arg-type,return-value]


def read_rows(reader: Any, partition: Any) -> list[tuple[Any, ...]]:
    """The rows a reader yields for a partition (it yields Arrow batches), as tuples in the
    schema's column order."""
    rows = []
    for batch in reader.read(partition):
        assert batch.schema.equals(ARROW_SCHEMA)
        columns = [column.to_pylist() for column in batch.columns]
        rows.extend(zip(*columns, strict=True))
    return rows


def read_batch_rows(reader: KinesisStreamReader, start: Any, end: Any) -> list[str]:
    """What Spark's executors would emit for (start, end], in partition order."""
    rows = []
    for partition in reader.partitions(start, end):
        fresh = scripted_like(reader)  # executors build their own reader
        rows.extend(row[0].decode() for row in read_rows(fresh, partition))
    return rows


def scripted_like(reader: KinesisStreamReader) -> KinesisStreamReader:
    return KinesisStreamReader(reader.options, reader._client_factory, reader._sleep)


def test_reshard_as_kinesis_reports_it_reads_parent_to_its_end_before_children() -> None:
    kinesis = ScriptedKinesis()
    kinesis.add_shard("shardId-000000000000")
    kinesis.put("shardId-000000000000", "a-1", "b-1", "a-2")
    reader = scripted_reader(kinesis)
    first = reader.latestOffset()
    assert read_batch_rows(reader, reader.initialOffset(), first) == ["a-1", "b-1", "a-2"]

    # Split: the parent gets its last records, closes; children take the new ones. ListShards
    # does not show the children yet: the ChildShards of the parent's last page name them.
    kinesis.put("shardId-000000000000", "a-3", "b-2")
    kinesis.closed.add("shardId-000000000000")
    kinesis.add_shard("shardId-000000000001", ("shardId-000000000000",))
    kinesis.add_shard("shardId-000000000002", ("shardId-000000000000",))
    kinesis.put("shardId-000000000001", "a-4", "a-5")
    kinesis.put("shardId-000000000002", "b-3")
    listing = kinesis.list_shards
    kinesis.list_shards = lambda **_: {"Shards": listing()["Shards"][:1]}  # type: ignore[method-assign]
    second = reader.latestOffset()
    assert second["shardId-000000000000"]["finished"] is True
    assert second["shardId-000000000001"] == {
        "at": "TRIM_HORIZON",
        "parents": ["shardId-000000000000"],
    }
    assert read_batch_rows(reader, first, second) == ["a-3", "b-2"]  # children wait a batch

    kinesis.list_shards = listing  # type: ignore[method-assign]
    third = reader.latestOffset()
    assert read_batch_rows(reader, second, third) == ["a-4", "a-5", "b-3"]
    assert reader.latestOffset() == third  # nothing new: the same offset, so no batch
    assert third["shardId-000000000000"]["finished"] is True  # kept, marked finished


class BusyKinesis(ScriptedKinesis):
    """A shard whose producer never pauses: a new record lands after every GetRecords page."""

    def __init__(self) -> None:
        super().__init__()
        self.pages = 0

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        answer = super().get_records(ShardIterator, Limit)
        self.pages += 1
        self.put(ShardIterator.split("|")[0], f"a-{100 + self.pages}")
        return answer


def test_a_busy_stream_still_gets_batches_that_end_at_the_tip() -> None:
    kinesis = BusyKinesis()
    kinesis.add_shard("s")
    kinesis.put("s", "a-1", "a-2")
    reader = scripted_reader(kinesis)
    first = reader.latestOffset()
    # The page at the tip ends the batch, though the next record landed right after it.
    assert kinesis.pages == 1
    assert read_batch_rows(reader, reader.initialOffset(), first) == ["a-1", "a-2"]
    assert kinesis.pages == 1  # the batch's rows came with its partition: no page read twice
    second = reader.latestOffset()
    assert kinesis.pages == 2
    assert read_batch_rows(reader, first, second) == ["a-101"]


class CountingKinesis(ScriptedKinesis):
    def __init__(self) -> None:
        super().__init__()
        self.get_records_calls = 0

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        self.get_records_calls += 1
        return super().get_records(ShardIterator, Limit)


def test_a_batch_reads_each_record_once_and_a_replanned_batch_replays_the_same_rows() -> None:
    kinesis = CountingKinesis()
    for shard in ("s0", "s1"):
        kinesis.add_shard(shard)
    kinesis.put("s0", "a-1", "a-2", "a-3")
    kinesis.put("s1", "b-1", "b-2")
    reader = scripted_reader(kinesis, **{"kinesis.getRecords.numberOfRecordsPerFetch": "2"})
    start, end = reader.initialOffset(), reader.latestOffset()
    read_ahead_calls = kinesis.get_records_calls
    assert read_ahead_calls >= 3  # two pages of s0, one or more of s1

    planned = reader.partitions(start, end)
    assert [p.batches is not None for p in planned] == [True, True]  # type: ignore[attr-defined]
    rows = [row[0].decode() for p in planned for row in read_rows(scripted_like(reader), p)]
    assert rows == ["a-1", "a-2", "a-3", "b-1", "b-2"]
    assert kinesis.get_records_calls == read_ahead_calls  # nothing read twice

    # The same batch planned again (a restarted query re-runs its last batch): replayed from
    # the stream, the same rows.
    replanned = reader.partitions(start, end)
    assert [p.batches for p in replanned] == [None, None]  # type: ignore[attr-defined]
    assert read_batch_rows(reader, start, end) == rows
    assert kinesis.get_records_calls > read_ahead_calls


def test_throttling_is_retried_with_capped_backoff() -> None:
    kinesis = ScriptedKinesis()
    kinesis.add_shard("s")
    kinesis.put("s", "a-1")
    kinesis.failures = [
        client_error("ProvisionedThroughputExceededException"),
        client_error("InternalFailure", status=500),
    ]
    sleeps: list[float] = []
    reader = scripted_reader(
        kinesis,
        sleeps,
        **{"kinesis.clientRetryIntervalsMs": "100", "kinesis.clientMaxRetryIntervalMs": "150"},
    )
    end = reader.latestOffset()
    assert read_batch_rows(reader, reader.initialOffset(), end) == ["a-1"]
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1  # half fixed, half jitter, of 100 ms
    assert 0.075 <= sleeps[1] <= 0.15  # 200 ms capped at 150 ms

    kinesis.failures = [client_error("ProvisionedThroughputExceededException")] * 3
    stubborn = scripted_reader(kinesis, [], **{"kinesis.clientNumRetries": "2"})
    with pytest.raises(KinesisThrottledError, match="after 2 retries"):
        stubborn.latestOffset()


class FakeClock:
    """A monotonic clock that only sleeping moves (and the test, by hand)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class TimedKinesis(ScriptedKinesis):
    """Notes when each GetRecords came, on `clock`, and for which shard."""

    def __init__(self, clock: FakeClock, takes_s: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.takes_s = takes_s  # how long each GetRecords takes to answer
        self.calls: list[tuple[float, str]] = []

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        self.calls.append((round(self.clock.now, 6), ShardIterator.split("|")[0]))
        self.clock.now += self.takes_s
        return super().get_records(ShardIterator=ShardIterator, Limit=Limit)


def paced_reader(kinesis: TimedKinesis, clock: FakeClock, **options: str) -> KinesisStreamReader:
    """A reader of `kinesis` with the default 200 ms fetch interval, on `clock`."""
    parsed = parse_options(
        {
            "kinesis.streamName": "trades",
            "kinesis.startingPosition": "TRIM_HORIZON",
            "kinesis.getRecords.fetchIntervalMs": "200",
            **options,
        }
    )
    return KinesisStreamReader(
        parsed,
        lambda _: kinesis,  # type: ignore[arg-type,return-value]
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )


def test_a_shard_is_read_once_per_fetch_interval_across_batches_too() -> None:
    """A query that triggers as fast as it goes asks for offsets again at once: the read-ahead
    waits out the rest of each shard's interval instead of polling Kinesis beyond its 5 reads
    a second per shard (and not at all when the interval has passed)."""
    clock = FakeClock()
    kinesis = TimedKinesis(clock)
    kinesis.add_shard("s0")
    kinesis.add_shard("s1")
    kinesis.put("s0", "a-1")
    kinesis.put("s1", "b-1")
    # shard after shard: a deterministic order
    reader = paced_reader(kinesis, clock, **{"kinesis.checkNewRecordThreads": "1"})
    first = reader.latestOffset()
    assert kinesis.calls == [(100.0, "s0"), (100.0, "s1")]
    assert clock.sleeps == []

    clock.now += 0.05
    kinesis.put("s0", "a-2")
    second = reader.latestOffset()
    assert clock.sleeps == [0.15]  # the rest of s0's interval; s1's had passed meanwhile
    assert kinesis.calls[2:] == [(100.2, "s0"), (100.2, "s1")]
    assert read_batch_rows(reader, first, second) == ["a-2"]

    clock.now += 1.0
    reader.latestOffset()
    assert clock.sleeps == [0.15]
    assert kinesis.calls[4:] == [(101.2, "s0"), (101.2, "s1")]


def test_the_time_a_call_takes_counts_towards_the_fetch_interval() -> None:
    """Calls start 200 ms apart, not 200 ms after the previous answer: a page that takes 80 ms
    to come leaves 120 ms to wait."""
    clock = FakeClock()
    kinesis = TimedKinesis(clock, takes_s=0.08)
    kinesis.add_shard("s0")
    kinesis.put("s0", "a-1", "a-2", "a-3")
    reader = paced_reader(kinesis, clock, **{"kinesis.getRecords.numberOfRecordsPerFetch": "1"})
    end = reader.latestOffset()
    assert kinesis.calls == [(100.0, "s0"), (100.2, "s0"), (100.4, "s0")]
    assert clock.sleeps == [0.12, 0.12]
    assert read_batch_rows(reader, reader.initialOffset(), end) == ["a-1", "a-2", "a-3"]
    clock.now = 100.5  # 100 ms after the last call started
    reader.latestOffset()
    assert kinesis.calls[3:] == [(100.6, "s0")]


def test_expired_iterator_is_renewed_from_the_last_record_read() -> None:
    kinesis = ScriptedKinesis()
    kinesis.add_shard("s")
    (seq,) = kinesis.put("s", "a-1")
    reader = scripted_reader(kinesis)
    first = reader.latestOffset()
    (_, cached) = reader._iterators["s"]
    kinesis.expired.add(cached)  # five minutes pass between triggers
    kinesis.put("s", "a-2", "a-3")
    kinesis.iterator_requests.clear()
    second = reader.latestOffset()
    assert kinesis.iterator_requests == [
        {
            "StreamName": "trades",
            "ShardId": "s",
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": seq,
        }
    ]
    assert read_batch_rows(reader, first, second) == ["a-2", "a-3"]


def test_replay_of_trimmed_records_is_data_loss(caplog: pytest.LogCaptureFixture) -> None:
    kinesis = ScriptedKinesis()
    kinesis.add_shard("s")
    kinesis.put("s", "a-1", "a-2", "a-3")
    reader = scripted_reader(kinesis)
    end = offsets_from_json(reader.latestOffset())["s"]
    del kinesis.records["s"][1:]  # retention passed before the batch was replayed
    kinesis.closed.add("s")

    def replay(**options: str) -> list[bytes]:
        api = KinesisApi(kinesis, parse_options({"kinesis.streamName": "trades", **options}))  # type: ignore[arg-type]
        return [data for b in replay_range(api, "s", TH, end) for data in b.column(0).to_pylist()]

    with caplog.at_level(logging.WARNING):
        assert replay() == [b"a-1"]
    assert "records were trimmed" in caplog.text
    with pytest.raises(KinesisDataLossError):
        replay(**{"kinesis.failOnDataLoss": "true"})


def test_read_ahead_from_latest_only_locates_the_first_new_record() -> None:
    kinesis = ScriptedKinesis()
    kinesis.add_shard("s")
    (first_new,) = kinesis.put("s", "a-1")
    api = KinesisApi(kinesis, parse_options({"kinesis.streamName": "t"}))  # type: ignore[arg-type]
    latest = ShardOffset("LATEST", timestamp_ms=0)
    kinesis.get_shard_iterator = lambda **_: {"ShardIterator": "s|0|x"}  # type: ignore[method-assign]
    result = read_ahead(api, "s", latest, budget=10, closed=False)
    assert (result.offset, result.records) == (at_seq(first_new), 0)


# ---------------------------------------------------------------------------------------------
# Against the local endpoint (moto over HTTP)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Put:
    key: str
    n: int
    shard_id: str
    sequence_number: str


def put(kinesis: Any, stream: str, keys: list[str], per_key: int, first: int = 0) -> list[Put]:
    """`per_key` records for each key, interleaved; payload {"key", "n"} with n counting up."""
    entries = [
        {"Data": json.dumps({"key": key, "n": n}).encode(), "PartitionKey": key}
        for n in range(first, first + per_key)
        for key in keys
    ]
    answer = kinesis.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 0
    return [
        Put(e["PartitionKey"], json.loads(e["Data"])["n"], r["ShardId"], r["SequenceNumber"])
        for e, r in zip(entries, answer["Records"], strict=True)
    ]


def source(endpoint: str, stream: str, **extra: str) -> dict[str, str]:
    return {
        "kinesis.streamName": stream,
        "kinesis.endpointUrl": endpoint,
        "kinesis.region": REGION,
        "kinesis.awsAccessKeyId": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "kinesis.awsSecretKey": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "kinesis.startingPosition": "TRIM_HORIZON",
        "kinesis.getRecords.fetchIntervalMs": "0",
        **extra,
    }


def test_replaying_the_same_offsets_gives_identical_rows(
    aws_env: dict[str, str], kinesis: Any, stream_name: str
) -> None:
    puts = put(kinesis, stream_name, [f"k{i}" for i in range(6)], per_key=4)
    options = parse_options(
        source(aws_env["AWS_ENDPOINT_URL"], stream_name, **{"kinesis.maxFetchRecordsPerShard": "5"})
    )
    reader = KinesisStreamReader(options)
    start, end = reader.initialOffset(), reader.latestOffset()
    partitions = reader.partitions(start, end)
    assert len(partitions) == len({p.shard_id for p in puts})  # one per shard

    def replay() -> list[tuple[Any, ...]]:
        return [row for p in partitions for row in read_rows(KinesisStreamReader(options), p)]

    first = replay()
    assert len(first) == 5 * len(partitions)  # the per-shard cap
    put(kinesis, stream_name, ["k0", "k1"], per_key=3, first=100)  # newer records: not in range
    assert replay() == first
    reader.stop()


@pytest.fixture(scope="module")
def kinesis_format(spark: SparkSession) -> str:
    spark.dataSource.register(KinesisDataSource)
    return FORMAT


@dataclass(frozen=True)
class Received:
    batch_id: int
    key: str
    n: int
    sequence_number: str
    stream: str
    arrival: datetime


@contextmanager
def running(
    frame: DataFrame, checkpoint: Path, fail_on_batch: int | None = None
) -> Iterator[tuple[StreamingQuery, list[Received]]]:
    """The stream collected by foreachBatch, in batch order, rows in partition order."""
    received: list[Received] = []

    def collect(batch: DataFrame, batch_id: int) -> None:
        for row in batch.collect():
            payload = json.loads(bytes(row.data))
            arrival = row.approximateArrivalTimestamp.replace(tzinfo=UTC)  # session zone: UTC
            received.append(
                Received(
                    batch_id,
                    payload["key"],
                    payload["n"],
                    row.sequenceNumber,
                    row.streamName,
                    arrival,
                )
            )
        if batch_id == fail_on_batch:
            raise RuntimeError(f"crash after batch {batch_id} was written")

    query = (
        frame.writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(checkpoint))
        .start()
    )
    try:
        yield query, received
    finally:
        query.stop()


def stream_of(spark: SparkSession, options: dict[str, str]) -> DataFrame:
    return spark.readStream.format(FORMAT).options(**options).load()


def by_shard(received: list[Received], puts: list[Put]) -> dict[str, list[str]]:
    shard_of = {p.key: p.shard_id for p in puts}
    shards: dict[str, list[str]] = defaultdict(list)
    for r in received:
        shards[shard_of[r.key]].append(r.sequence_number)
    return dict(shards)


def test_multi_shard_stream_is_read_completely_and_in_order_per_shard(
    spark: SparkSession,
    job_settings: JobSettings,
    kinesis_format: str,
    aws_env: dict[str, str],
    kinesis: Any,
    stream_name: str,
    tmp_path: Path,
) -> None:
    puts = put(kinesis, stream_name, [f"k{i}" for i in range(8)], per_key=5)
    assert len({p.shard_id for p in puts}) == 2
    settings = job_settings.model_copy(
        update={
            "stream": StreamSettings(
                name=stream_name,
                region=REGION,
                endpoint_url=aws_env["AWS_ENDPOINT_URL"],
            )
        }
    )
    extra = source(aws_env["AWS_ENDPOINT_URL"], stream_name)
    del extra["kinesis.streamName"], extra["kinesis.endpointUrl"]
    frame = read_stream(spark, settings, extra)
    assert frame.isStreaming
    assert frame.schema == schemas.RAW_KINESIS_RECORD
    with running(frame, tmp_path / "checkpoint") as (query, received):
        query.processAllAvailable()

    assert sorted((r.key, r.n) for r in received) == sorted((p.key, p.n) for p in puts)
    expected_by_shard: dict[str, list[str]] = defaultdict(list)
    for p in puts:
        expected_by_shard[p.shard_id].append(p.sequence_number)
    assert by_shard(received, puts) == expected_by_shard  # complete, in sequence order
    assert {r.stream for r in received} == {stream_name}

    arrivals = {  # as Kinesis reports them, to the millisecond
        (json.loads(rec["Data"])["key"], json.loads(rec["Data"])["n"]): rec[
            "ApproximateArrivalTimestamp"
        ]
        for shard in {p.shard_id for p in puts}
        for rec in kinesis.get_records(
            ShardIterator=kinesis.get_shard_iterator(
                StreamName=stream_name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )["Records"]
    }
    assert {(r.key, r.n): r.arrival for r in received} == arrivals

    static = spark.read.format(FORMAT).options(**source(aws_env["AWS_ENDPOINT_URL"], stream_name))
    assert sorted(bytes(row.data) for row in static.load().collect()) == sorted(
        json.dumps({"key": p.key, "n": p.n}).encode() for p in puts
    )


def test_query_on_an_empty_stream_then_restarted_continues_after_its_commits(
    spark: SparkSession,
    kinesis_format: str,
    aws_env: dict[str, str],
    kinesis: Any,
    stream_name: str,
    tmp_path: Path,
) -> None:
    options = source(aws_env["AWS_ENDPOINT_URL"], stream_name)
    keys = [f"k{i}" for i in range(4)]
    with running(stream_of(spark, options), tmp_path / "cp") as (query, first):
        query.processAllAvailable()
        assert (first, query.exception(), query.isActive) == ([], None, True)  # empty: no error
        before = put(kinesis, stream_name, keys, per_key=3)
        query.processAllAvailable()
    later = put(kinesis, stream_name, keys, per_key=2, first=3)
    with running(stream_of(spark, options), tmp_path / "cp") as (query, second):
        query.processAllAvailable()

    assert sorted((r.key, r.n) for r in first) == sorted((p.key, p.n) for p in before)
    assert sorted((r.key, r.n) for r in second) == sorted((p.key, p.n) for p in later)
    assert min(r.batch_id for r in second) > max(r.batch_id for r in first)


def test_batch_rerun_after_a_crash_gives_the_same_rows(
    spark: SparkSession,
    kinesis_format: str,
    aws_env: dict[str, str],
    kinesis: Any,
    stream_name: str,
    tmp_path: Path,
) -> None:
    # Batch 0 is the hard case: Spark logs only its end and asks the new reader for the start.
    options = source(aws_env["AWS_ENDPOINT_URL"], stream_name)
    keys = [f"k{i}" for i in range(4)]
    puts = put(kinesis, stream_name, keys, per_key=3)
    crashing = running(stream_of(spark, options), tmp_path / "cp", fail_on_batch=0)
    with crashing as (query, crashed), pytest.raises(StreamingQueryException, match="batch 0"):
        query.processAllAvailable()
    puts += put(kinesis, stream_name, keys, per_key=2, first=3)  # arrives while it is down
    with running(stream_of(spark, options), tmp_path / "cp") as (query, rerun):
        query.processAllAvailable()

    assert {r.batch_id for r in crashed} == {0}
    assert len(crashed) == 12
    assert [r for r in rerun if r.batch_id == 0] == crashed  # same rows, same order
    assert sorted((r.key, r.n) for r in rerun) == sorted((p.key, p.n) for p in puts)


def test_record_cap_bounds_rows_per_micro_batch(
    spark: SparkSession,
    kinesis_format: str,
    aws_env: dict[str, str],
    kinesis: Any,
    stream_name: str,
    tmp_path: Path,
) -> None:
    caps = {"kinesis.maxRecordsPerBatch": "5", "kinesis.maxFetchRecordsPerShard": "3"}
    options = source(aws_env["AWS_ENDPOINT_URL"], stream_name, **caps)
    puts = put(kinesis, stream_name, [f"k{i}" for i in range(6)], per_key=2)
    assert min(Counter(p.shard_id for p in puts).values()) >= 3
    with running(stream_of(spark, options), tmp_path / "cp") as (query, received):
        query.processAllAvailable()

    assert sorted((r.key, r.n) for r in received) == sorted((p.key, p.n) for p in puts)
    shard_of = {p.key: p.shard_id for p in puts}
    sizes: dict[int, int] = defaultdict(int)
    per_shard: dict[tuple[int, str], int] = defaultdict(int)
    for r in received:
        sizes[r.batch_id] += 1
        per_shard[(r.batch_id, shard_of[r.key])] += 1
    assert max(sizes.values()) == 5  # 3 + 2: both shards have records
    assert max(per_shard.values()) == 3
    assert len(sizes) >= 3  # 12 records, at most 5 a batch


def test_latest_skips_records_put_before_the_query_started(
    spark: SparkSession,
    kinesis_format: str,
    aws_env: dict[str, str],
    kinesis: Any,
    stream_name: str,
    tmp_path: Path,
) -> None:
    keys = [f"k{i}" for i in range(4)]
    put(kinesis, stream_name, keys, per_key=2)
    options = source(
        aws_env["AWS_ENDPOINT_URL"], stream_name, **{"kinesis.startingPosition": "LATEST"}
    )
    with running(stream_of(spark, options), tmp_path / "cp") as (query, received):
        query.processAllAvailable()  # the query has started: its LATEST is now
        new = put(kinesis, stream_name, keys, per_key=2, first=10)
        query.processAllAvailable()
    assert sorted((r.key, r.n) for r in received) == sorted((p.key, p.n) for p in new)


def test_at_timestamp_starts_at_the_first_record_that_arrived_then(
    aws_env: dict[str, str], kinesis: Any, stream_name: str
) -> None:
    keys = [f"k{i}" for i in range(4)]
    put(kinesis, stream_name, keys, per_key=2)
    time.sleep(0.01)  # so that some records arrive in a later millisecond than others
    put(kinesis, stream_name, keys, per_key=2, first=2)
    arrivals = []
    for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for rec in kinesis.get_records(ShardIterator=iterator)["Records"]:
            payload = json.loads(rec["Data"])
            arrivals.append((rec["ApproximateArrivalTimestamp"], payload["key"], payload["n"]))
    start = sorted(arrivals)[len(arrivals) // 2][0].astimezone(UTC)
    expected = sorted((key, n) for stamp, key, n in arrivals if stamp >= start)
    assert 0 < len(expected) < len(arrivals)

    position = f"AT_TIMESTAMP {start.isoformat()}"
    options = parse_options(
        source(aws_env["AWS_ENDPOINT_URL"], stream_name, **{"kinesis.startingPosition": position})
    )
    reader = KinesisStreamReader(options)  # as Spark drives it, without a query
    end = reader.latestOffset()
    rows = [
        row
        for partition in reader.partitions(reader.initialOffset(), end)
        for row in read_rows(KinesisStreamReader(options), partition)
    ]
    assert sorted((json.loads(row[0])["key"], json.loads(row[0])["n"]) for row in rows) == expected


# ---------------------------------------------------------------------------------------------
# Resharding, on a moto whose resharding behaves like Kinesis'
# ---------------------------------------------------------------------------------------------

# moto 5.2.5's resharding is not the service's (checked against moto/kinesis/models.py):
# - PutRecord keeps routing to the closed parent after a split or merge: `get_shard_for_key`
#   does not skip closed shards, and the parent comes first in its shard table;
# - SplitShard re-puts the parent's records (renumbered), MergeShards copies both parents'
#   records into the child, so a reader that drains parents and then children sees them twice.
# Kinesis leaves records where they were written and sends new ones to the open children. This
# server patches those three methods and is otherwise devstack's serialized moto server.
FAITHFUL_RESHARDING_MOTO = """
import hashlib, sys
from collections import OrderedDict
from moto.kinesis.models import Stream
from devstack.moto_server import main

def get_shard_for_key(self, partition_key, explicit_hash_key):
    key = int(explicit_hash_key or hashlib.md5(partition_key.encode()).hexdigest(),
              10 if explicit_hash_key else 16)
    return next(s for s in self.shards.values()
                if s.is_open and s.starting_hash <= key <= s.ending_hash)

def without_moved_records(reshard):
    def patched(self, shard_id, other):
        before = {k: s.records for k, s in self.shards.items()}
        reshard(self, shard_id, other)
        for k, shard in self.shards.items():
            shard.records = before.get(k, OrderedDict())
    return patched

Stream.get_shard_for_key = get_shard_for_key
Stream.split_shard = without_moved_records(Stream.split_shard)
Stream.merge_shards = without_moved_records(Stream.merge_shards)
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def resharding_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto-resharding") / "moto.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", FAITHFUL_RESHARDING_MOTO, "-H", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=log,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "the resharding moto server exited"
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the resharding moto server did not start"
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def reshard(kinesis: Any, stream: str, shards: int) -> None:
    kinesis.update_shard_count(
        StreamName=stream, TargetShardCount=shards, ScalingType="UNIFORM_SCALING"
    )
    ensure_stream(kinesis, stream)  # waits until ACTIVE again


def test_resharding_while_reading_loses_nothing_and_keeps_key_order(
    spark: SparkSession,
    kinesis_format: str,
    resharding_endpoint: str,
    tmp_path: Path,
) -> None:
    kinesis = boto3.client(
        "kinesis",
        endpoint_url=resharding_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stream = f"trades-{uuid.uuid4().hex[:8]}"
    ensure_stream(kinesis, stream, shards=2)
    keys = [f"k{i}" for i in range(6)]
    options = source(resharding_endpoint, stream)
    puts = put(kinesis, stream, keys, per_key=2)
    with running(stream_of(spark, options), tmp_path / "cp") as (query, received):
        query.processAllAvailable()
        puts += put(kinesis, stream, keys, per_key=2, first=2)  # unread when the split comes
        reshard(kinesis, stream, 4)  # splits both shards
        after_split = put(kinesis, stream, keys, per_key=2, first=4)
        puts += after_split
        query.processAllAvailable()
        reshard(kinesis, stream, 2)  # merges the four children pairwise
        after_merge = put(kinesis, stream, keys, per_key=2, first=6)
        puts += after_merge
        query.processAllAvailable()
        end_offset = query.lastProgress["sources"][0]["endOffset"]
        offsets = json.loads(end_offset) if isinstance(end_offset, str) else end_offset

    assert {p.shard_id for p in after_split}.isdisjoint(
        {"shardId-000000000000", "shardId-000000000001"}
    )
    assert {p.shard_id for p in after_merge} <= {"shardId-000000000006", "shardId-000000000007"}
    assert sorted((r.key, r.n) for r in received) == sorted((p.key, p.n) for p in puts)
    for key in keys:
        assert [r.n for r in received if r.key == key] == list(range(8)), key
    assert offsets["shardId-000000000000"]["finished"] is True
    assert offsets["shardId-000000000002"]["finished"] is True
    assert offsets["shardId-000000000006"]["parents"] == [
        "shardId-000000000002",
        "shardId-000000000003",
    ]


def kinesis_json(records: list[dict[str, Any]]) -> dict[str, Any]:
    """boto3-shaped records as Kinesis' JSON answer has them: base64 data, epoch seconds."""
    encoded = []
    for record in records:
        item = {**record, "Data": base64.b64encode(record["Data"]).decode()}
        if "ApproximateArrivalTimestamp" in record:
            item["ApproximateArrivalTimestamp"] = record["ApproximateArrivalTimestamp"].timestamp()
        item["EncryptionType"] = "NONE"  # keys the source does not read are skipped
        encoded.append(item)
    return {"Records": encoded, "NextShardIterator": "next", "MillisBehindLatest": 0}


def test_a_page_becomes_an_arrow_batch_of_the_record_schema() -> None:
    """Kinesis' JSON answer (base64 data, epoch-second arrival times with milliseconds) and
    boto3's (bytes, aware datetimes) give the same batch, with the values boto3 gives; records
    without an arrival time (a scripted Kinesis's) get a null."""
    arrival = datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    records = [
        {
            "SequenceNumber": str(100 + n),
            "Data": b"\x00\xff" if n == 3 else f"r{n}".encode(),  # binary data too
            "PartitionKey": "clé" if n == 5 else f"k{n}",  # not only ASCII
            "ApproximateArrivalTimestamp": arrival + timedelta(milliseconds=n),
        }
        for n in range(25)
    ]
    decoded = decode_page(json.dumps(kinesis_json(records)).encode())
    assert decoded == page_from_answer({**kinesis_json(records), "Records": records})
    batch = page_batch("trades", decoded.Records)
    assert batch.schema.equals(ARROW_SCHEMA)
    rows = list(zip(*(c.to_pylist() for c in batch.columns), strict=True))
    assert rows == [
        (
            r["Data"],
            "trades",
            r["PartitionKey"],
            r["SequenceNumber"],
            r["ApproximateArrivalTimestamp"],
        )
        for r in records
    ]
    assert rows[3][0] == b"\x00\xff"
    assert rows[5][2] == "clé"

    del records[7]["ApproximateArrivalTimestamp"]
    sparse = page_batch("trades", page_from_answer({"Records": records}).Records)
    assert sparse.schema.equals(ARROW_SCHEMA)
    assert sparse.column(4).to_pylist()[6:9] == [rows[6][4], None, rows[8][4]]
    assert sparse.column(0).to_pylist() == [r[0] for r in rows]


def test_a_page_batch_does_not_import_pandas() -> None:
    """The read-ahead runs in a driver-side process Spark starts per query; pyarrow's
    `pa.array` imports pandas there (~0.4 s a query), the buffers `page_batch` uses do not."""
    script = (
        "import sys; from spark_jobs.common.kinesis_source import page_batch, WireRecord; "
        "page_batch('s', [WireRecord('1', b'x', 'k', 1.5)]); print('pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert done.stdout.strip() == "False"


def test_an_answer_that_is_not_a_page_is_a_retryable_failure() -> None:
    with pytest.raises(ClientError) as caught:
        decode_page(b'{"Records": [{"SequenceNumber": "1", "Data": "not base64!"}]}')
    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert "not base64!" in caught.value.response["Error"]["Message"]
