"""The local Kinesis (devstack.moto_server): moto with its hot calls answered directly.

Over real HTTP against the session's server (the patches live in that process only): every
record comes back once, in order, byte for byte; iterators start where they should; errors are
moto's. In-process, for the comparison only: the fast handlers' answers are the bytes moto's own
handlers write, and the O(1) page lookup finds moto's page.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from types import MethodType
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.request import Request
from moto.kinesis.models import KinesisBackend, Shard, kinesis_backends
from moto.kinesis.responses import KinesisResponse

from devstack import moto_server
from devstack.aws import LocalAws

REGION = "us-east-1"
KEYS = ["BTC-USDT", "ETH-USDT", "ключ", "clé-€", "rocket-🚀", 'quote"back\\slash', "tab\tnew\nline"]


def payload(rng: random.Random, i: int) -> bytes:
    """Mixed sizes and kinds: empty, binary (zero bytes included), non-ASCII text, JSON-ish."""
    kind = i % 5
    if kind == 0:
        return rng.randbytes(rng.choice([1, 17, 250, 1000, 4096]))
    if kind == 1:
        return f'trade {i}: € ü 日本 🚀 "quoted" \\ {"x" * rng.randrange(300)}'.encode()
    if kind == 2:
        return b"\x00\xff\x00" * rng.randrange(1, 90)
    if kind == 3:
        return json.dumps({"i": i, "p": rng.random()}).encode()
    return b"" if i % 1000 == 4 else rng.randbytes(rng.randrange(1, 600))


def put_all(kinesis: Any, stream: str, count: int) -> dict[str, list[tuple[str, bytes, str]]]:
    """Put `count` records in batches of 500; what each shard should hold, in order."""
    rng = random.Random(7)
    expected: dict[str, list[tuple[str, bytes, str]]] = {}
    for first in range(0, count, 500):
        batch = [
            {"Data": payload(rng, i), "PartitionKey": f"{KEYS[i % len(KEYS)]}-{i % 11}"}
            for i in range(first, min(first + 500, count))
        ]
        answer = kinesis.put_records(StreamName=stream, Records=batch)
        assert answer["FailedRecordCount"] == 0
        assert len(answer["Records"]) == len(batch)
        for sent, entry in zip(batch, answer["Records"], strict=True):
            assert isinstance(entry["SequenceNumber"], str)
            expected.setdefault(entry["ShardId"], []).append(
                (entry["SequenceNumber"], sent["Data"], sent["PartitionKey"])
            )
    return expected


def read_shard(
    kinesis: Any, stream: str, shard_id: str, limits: list[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    """A shard from TRIM_HORIZON to the tip, one page per limit in turn: its records and the
    pages' sizes. Checks every page's iterator and lag."""
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    sizes: list[int] = []
    last_page: dict[str, Any] | None = None
    for limit in itertools.cycle(limits):
        page = kinesis.get_records(ShardIterator=iterator, Limit=limit)
        assert isinstance(page["NextShardIterator"], str)  # the shard is open
        assert isinstance(page["MillisBehindLatest"], int)
        assert page["MillisBehindLatest"] >= 0
        iterator = page["NextShardIterator"]
        if not page["Records"]:
            assert page["MillisBehindLatest"] == 0  # the tip
            break
        sizes.append(len(page["Records"]))
        records.extend(page["Records"])
        last_page = page
    assert last_page is not None
    assert last_page["MillisBehindLatest"] == 0  # the page with the newest record
    return records, sizes


def page_sizes(count: int, limits: list[int]) -> list[int]:
    """moto fills every page up to its limit."""
    sizes = []
    for limit in itertools.cycle(limits):
        if count == 0:
            return sizes
        sizes.append(min(limit, count))
        count -= sizes[-1]
    raise AssertionError("unreachable")


def test_every_record_comes_back_once_in_order_byte_for_byte(
    kinesis: Any, stream_name: str
) -> None:
    expected = put_all(kinesis, stream_name, 25_000)
    assert len(expected) == 2
    assert sum(len(records) for records in expected.values()) == 25_000
    for shard_id, want in expected.items():
        for limits in ([10_000], [7, 1, 2_500, 7, 500]):
            got, sizes = read_shard(kinesis, stream_name, shard_id, limits)
            assert sizes == page_sizes(len(want), limits)
            assert [(r["SequenceNumber"], r["Data"], r["PartitionKey"]) for r in got] == want
            numbers = [int(r["SequenceNumber"]) for r in got]
            assert numbers == sorted(set(numbers))  # ascending, each once
            arrivals = [r["ApproximateArrivalTimestamp"] for r in got]
            assert all(isinstance(a, datetime) and a.tzinfo is not None for a in arrivals)
            assert arrivals == sorted(arrivals)
            assert {frozenset(r) for r in got} == {
                frozenset({"SequenceNumber", "ApproximateArrivalTimestamp", "Data", "PartitionKey"})
            }


def test_iterators_start_where_they_should_and_millis_behind_counts_to_the_newest(
    kinesis: Any, stream_name: str
) -> None:
    def put(n: int) -> list[str]:
        answer = kinesis.put_records(
            StreamName=stream_name, Records=[{"Data": b"r", "PartitionKey": "one"}] * n
        )
        return [entry["SequenceNumber"] for entry in answer["Records"]]

    def first_page(**position: str) -> dict[str, Any]:
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard, **position)
        page: dict[str, Any] = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=5)
        return page

    shard = kinesis.put_records(
        StreamName=stream_name, Records=[{"Data": b"r", "PartitionKey": "one"}]
    )["Records"][0]["ShardId"]
    older = put(4)
    time.sleep(0.25)
    newer = put(5)
    numbers = [*older, *newer]

    page = first_page(ShardIteratorType="TRIM_HORIZON")
    assert len(page["Records"]) == 5
    assert page["Records"][1]["SequenceNumber"] == older[0]
    behind = page["Records"][-1]["ApproximateArrivalTimestamp"]
    newest = first_page(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=newer[-1])
    assert [r["SequenceNumber"] for r in newest["Records"]] == [newer[-1]]
    gap_ms = (newest["Records"][0]["ApproximateArrivalTimestamp"] - behind).total_seconds() * 1000
    assert page["MillisBehindLatest"] >= 200
    assert abs(page["MillisBehindLatest"] - gap_ms) <= 2  # the answer's times are truncated to ms

    at = first_page(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=numbers[3])
    assert [r["SequenceNumber"] for r in at["Records"]] == numbers[3:8]
    after = first_page(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=numbers[3])
    assert [r["SequenceNumber"] for r in after["Records"]] == numbers[4:9]

    latest = first_page(ShardIteratorType="LATEST")
    assert latest["Records"] == []
    assert latest["MillisBehindLatest"] == 0
    fresh = put(2)
    following = kinesis.get_records(ShardIterator=latest["NextShardIterator"], Limit=5)
    assert [r["SequenceNumber"] for r in following["Records"]] == fresh
    assert following["MillisBehindLatest"] == 0
    tip = kinesis.get_records(ShardIterator=following["NextShardIterator"])
    assert tip["Records"] == []
    assert tip["MillisBehindLatest"] == 0
    assert tip["NextShardIterator"]

    (other,) = {s["ShardId"] for s in kinesis.list_shards(StreamName=stream_name)["Shards"]} - {
        shard
    }
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_name, ShardId=other, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    empty = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
    assert empty["Records"] == []
    assert empty["MillisBehindLatest"] == 0
    assert empty["NextShardIterator"]


@pytest.fixture
def strict_kinesis(aws_env: dict[str, str]) -> Any:
    """A client that does not retry (moto answers a bad iterator with a 500)."""
    return boto3.client(
        "kinesis", region_name=aws_env["AWS_REGION"], config=Config(retries={"max_attempts": 1})
    )


def error_of(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    answer = caught.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]


def test_errors_are_moto_s(strict_kinesis: Any, stream_name: str) -> None:
    kinesis = strict_kinesis

    def iterator_of(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    # What the unpatched server answered (moto 5.2.5): a 500 for an iterator it cannot decode.
    assert error_of(lambda: kinesis.get_records(ShardIterator="garbage")) == ("500", 500)
    assert error_of(lambda: kinesis.get_records(ShardIterator="garbage", Limit=7)) == ("500", 500)
    missing_stream = iterator_of("nope:shardId-000000000000:0")
    assert error_of(lambda: kinesis.get_records(ShardIterator=missing_stream)) == (
        "ResourceNotFoundException",
        400,
    )
    missing_shard = iterator_of(f"{stream_name}:shardId-000000000009:0")
    assert error_of(lambda: kinesis.get_records(ShardIterator=missing_shard, Limit=10)) == (
        "ResourceNotFoundException",
        400,
    )
    record = {"Data": b"x", "PartitionKey": "a"}
    assert error_of(lambda: kinesis.put_records(StreamName="nope", Records=[record])) == (
        "ResourceNotFoundException",
        400,
    )
    assert error_of(lambda: kinesis.put_record(StreamName="nope", **record)) == (
        "ResourceNotFoundException",
        400,
    )
    assert error_of(
        lambda: kinesis.put_records(StreamName=stream_name, Records=[record] * 501)
    ) == (
        "ValidationException",
        400,
    )
    put = kinesis.put_record(StreamName=stream_name, **record)
    assert put["SequenceNumber"] == "1"
    assert put["ShardId"].startswith("shardId-")


def post(local_aws: LocalAws, target: str, body: bytes) -> tuple[int, str, Any]:
    """A plain JSON client's request: status, content type and the parsed answer."""
    request = urllib.request.Request(
        local_aws.endpoint_url + "/",
        data=body,
        method="POST",
        headers={
            "X-Amz-Target": f"Kinesis_20131202.{target}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kinesis/"
            "aws4_request, SignedHeaders=host, Signature=x",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers["Content-Type"], json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_a_plain_json_client_gets_aws_types(
    local_aws: LocalAws, kinesis: Any, stream_name: str
) -> None:
    data = [b"\x00\x01binary", "ключ €".encode(), b""]
    body = {
        "StreamName": stream_name,
        "Records": [
            {"Data": base64.b64encode(d).decode(), "PartitionKey": key}
            for d, key in zip(data, ["a", "ключ", "b"], strict=True)
        ],
    }
    status, content_type, put = post(local_aws, "PutRecords", json.dumps(body).encode())
    assert (status, content_type) == (200, "application/x-amz-json-1.1")
    assert list(put) == ["FailedRecordCount", "Records"]
    assert put["FailedRecordCount"] == 0
    for entry in put["Records"]:
        assert list(entry) == ["SequenceNumber", "ShardId"]
        assert isinstance(entry["SequenceNumber"], str)
        assert isinstance(entry["ShardId"], str)

    status, _, one = post(
        local_aws,
        "PutRecord",
        json.dumps({"StreamName": stream_name, "Data": "eA==", "PartitionKey": "a"}).encode(),
    )
    assert status == 200
    assert list(one) == ["ShardId", "SequenceNumber"]

    shard = put["Records"][1]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    status, content_type, page = post(
        local_aws, "GetRecords", json.dumps({"ShardIterator": iterator, "Limit": 100}).encode()
    )
    assert (status, content_type) == (200, "application/x-amz-json-1.1")
    assert list(page) == ["Records", "NextShardIterator", "MillisBehindLatest"]
    assert isinstance(page["NextShardIterator"], str)
    assert isinstance(page["MillisBehindLatest"], int)
    sent = {
        e["SequenceNumber"]: (d, key)
        for e, d, key in zip(put["Records"], data, ["a", "ключ", "b"], strict=True)
    }
    assert page["Records"]
    for record in page["Records"]:
        assert list(record) == [
            "SequenceNumber",
            "ApproximateArrivalTimestamp",
            "Data",
            "PartitionKey",
        ]
        assert isinstance(record["ApproximateArrivalTimestamp"], int | float)
        if record["SequenceNumber"] in sent:
            d, key = sent[record["SequenceNumber"]]
            assert base64.b64decode(record["Data"]) == d
            assert record["PartitionKey"] == key

    status, content_type, _ = post(local_aws, "GetRecords", b'{"ShardIterator": "garbage"}')
    assert (status, content_type) == (500, "text/html; charset=utf-8")
    status, _, missing = post(local_aws, "PutRecords", b'{"StreamName": "nope", "Records": []}')
    assert status == 400
    assert json.loads(missing)["__type"] == "ResourceNotFoundException"


# In-process, for the comparison only: moto's handlers and the fast ones on one moto backend.

AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kinesis/aws4_request, "
    "SignedHeaders=host, Signature=x"
)


def dispatch(
    target: str, body: bytes | dict[str, Any], fast: bool
) -> tuple[int, dict[str, str], bytes]:
    """One request through moto's KinesisResponse, with moto's handler or the fast one (bound on
    this response object only: nothing in this process is patched)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request.from_primitives(
        "POST",
        f"https://kinesis.{REGION}.amazonaws.com/",
        {
            "X-Amz-Target": f"Kinesis_20131202.{target}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": AUTH,
        },
        raw,
    )
    response = KinesisResponse()
    if fast:
        handlers = {
            "GetRecords": ("get_records", moto_server.fast_get_records),
            "PutRecords": ("put_records", moto_server.fast_put_records),
            "PutRecord": ("put_record", moto_server.fast_put_record),
        }
        name, handler = handlers[target]
        setattr(response, name, MethodType(handler, response))
    response.setup_class(request)
    status, headers, answer = response.call_action()
    headers = {k: str(v) for k, v in headers.items() if k not in ("x-amzn-requestid", "date")}
    return status, headers, answer if isinstance(answer, bytes) else answer.encode()


def same_answer(target: str, body: bytes | dict[str, Any]) -> tuple[int, bytes]:
    moto = dispatch(target, body, fast=False)
    fast = dispatch(target, body, fast=True)
    assert fast == moto
    return moto[0], moto[2]


@pytest.fixture
def backend() -> Iterator[KinesisBackend]:
    backend: KinesisBackend = kinesis_backends[DEFAULT_ACCOUNT_ID][REGION]
    before = set(backend.streams)
    yield backend
    for name in set(backend.streams) - before:
        backend.delete_stream(None, name)


def test_fast_answers_are_moto_s_own_bytes(backend: KinesisBackend) -> None:
    stream = f"compare-{uuid.uuid4().hex[:8]}"
    twin = f"{stream}-twin"
    backend.create_stream(stream, 1)
    backend.create_stream(twin, 1)
    rng = random.Random(3)
    records = [
        {"Data": base64.b64encode(payload(rng, i)).decode(), "PartitionKey": KEYS[i % len(KEYS)]}
        for i in range(60)
    ]
    records += [
        {"Data": "YWJj\n", "PartitionKey": "non-canonical base64"},  # moto re-encodes it
        {"Data": "", "PartitionKey": "empty"},
        {"Data": "eA==", "PartitionKey": "x", "ExplicitHashKey": "5"},
    ]
    # PutRecords: two one-shard streams, same batch: same numbers, and moto's bytes.
    put = dispatch("PutRecords", {"StreamName": stream, "Records": records}, fast=False)
    assert put == dispatch("PutRecords", {"StreamName": twin, "Records": records}, fast=True)
    assert put[0] == 200
    assert json.loads(put[2])["Records"][0] == {
        "SequenceNumber": "1",
        "ShardId": "shardId-000000000000",
    }
    assert dispatch(
        "PutRecord", {"StreamName": stream, "Data": "eQ==", "PartitionKey": "k"}, False
    ) == (dispatch("PutRecord", {"StreamName": twin, "Data": "eQ==", "PartitionKey": "k"}, True))
    # Times moto's serializer writes differently: whole seconds (an int), under a millisecond.
    shard = backend.streams[stream].shards["shardId-000000000000"]
    whole, tiny = shard.records[2], shard.records[3]
    whole.created_at_datetime = whole.created_at_datetime.replace(microsecond=0)
    tiny.created_at_datetime = tiny.created_at_datetime.replace(microsecond=999)

    def iterator(after: int, name: str = stream) -> str:
        return base64.encodebytes(f"{name}:shardId-000000000000:{after}".encode()).decode()

    pages = [
        {"ShardIterator": iterator(0)},
        {"ShardIterator": iterator(0), "Limit": 7},
        {"ShardIterator": iterator(5), "Limit": 1},
        {"ShardIterator": iterator(-3), "Limit": 10_000},
        {"ShardIterator": iterator(64)},  # the tip: no records
        {"ShardIterator": iterator(1000), "Limit": 3},
        {"ShardIterator": iterator(0), "Limit": 0},  # moto's own handler: odd limits are its
        {"ShardIterator": iterator(0), "Limit": "7"},
        {"ShardIterator": iterator(0), "StreamARN": backend.streams[stream].arn, "Limit": 9},
    ]
    for page in pages:
        status, body = same_answer("GetRecords", page)
        assert status == 200
        assert body.startswith(b'{"Records": [')
    _, body = same_answer("GetRecords", {"ShardIterator": iterator(0)})
    answer = json.loads(body)
    assert len(answer["Records"]) == 64
    assert answer["Records"][60]["Data"] == "YWJj"
    assert answer["Records"][1]["ApproximateArrivalTimestamp"] == int(
        (whole.created_at_datetime - datetime(1970, 1, 1)).total_seconds()
    )
    under_a_millisecond = int(answer["Records"][2]["ApproximateArrivalTimestamp"])
    assert f'"ApproximateArrivalTimestamp": {under_a_millisecond}.0, '.encode() in body
    # Errors: the same status and body.
    assert same_answer("GetRecords", {"ShardIterator": iterator(0, "nope")})[0] == 400
    assert same_answer("PutRecords", {"StreamName": "nope", "Records": records[:1]})[0] == 400
    assert (
        same_answer("PutRecord", {"StreamName": "nope", "Data": "eA==", "PartitionKey": "k"})[0]
        == 400
    )
    assert same_answer("PutRecords", {"StreamName": stream, "Records": records[:1] * 501})[0] == 400
    assert same_answer("PutRecords", b"not json")[0] == 400
    for fast in (False, True):  # Flask answers it with a 500, patched or not
        with pytest.raises(ValueError, match="Incorrect padding"):
            dispatch("GetRecords", {"ShardIterator": "garbage"}, fast=fast)


def test_pages_are_found_without_a_scan_and_are_moto_s(backend: KinesisBackend) -> None:
    stream = f"pages-{uuid.uuid4().hex[:8]}"
    backend.create_stream(stream, 1)
    shard: Shard = backend.streams[stream].shards["shardId-000000000000"]
    empty: Any = moto_server.shard_records_after(shard, "0", 10)
    assert empty == Shard.get_records(shard, "0", 10) == ([], 0, 0)
    backend.put_records(None, stream, [{"Data": "eA==", "PartitionKey": str(i)} for i in range(40)])
    for last, limit in itertools.product(
        ["0", "-5", "1", "17", "39", "40", "41", "1000"], [None, 1, 7, 39, 40, 10_000, 0, -2]
    ):
        assert moto_server.shard_records_after(shard, last, limit) == Shard.get_records(
            shard, last, limit
        ), (last, limit)
    with pytest.raises(ValueError, match="invalid literal"):
        moto_server.shard_records_after(shard, "x", 10)


def test_main_applies_the_patches_in_the_server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[str] = []
    served: list[Any] = []
    monkeypatch.setattr(moto_server, "fast_shard_ends", lambda: applied.append("ends"))
    monkeypatch.setattr(moto_server, "fast_kinesis", lambda: applied.append("kinesis"))
    monkeypatch.setattr(moto_server, "run_simple", lambda *args, **kwargs: served.append(args))
    monkeypatch.setenv("MOTO_PORT", "1")
    assert moto_server.main(["-p", "1"]) == 0
    assert applied == ["ends", "kinesis"]
    assert isinstance(served[0][2], moto_server.SerializedApp)
