"""The lean PutRecords/GetRecords path (`producer.kinesis_wire`) over real HTTP: against the local
moto endpoint, its answers must be boto3's; against a tiny scripted endpoint, its errors must be
the ones the publisher's and the Spark source's retry logic expect."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from devstack.aws import free_port
from producer.batching import Record
from producer.kinesis_wire import (
    KinesisWire,
    client_error,
    error_code,
    parse_answer,
    put_records_body,
    wire_for,
)
from producer.metrics import ProducerCounters
from producer.publisher import KinesisPublisher, _retryable, to_record
from spark_jobs.common.kinesis_source import (
    KinesisApi,
    ShardCursor,
    ShardOffset,
    WirePage,
    WireRecord,
    _is_retryable,
    decode_page,
    parse_options,
)
from tests.producer.test_publisher import trades

# ---------------------------------------------------------------------------------------------
# Pure: bodies, answers, errors
# ---------------------------------------------------------------------------------------------

BINARY = bytes(range(256))


def retried_by(exc: Exception) -> tuple[bool, bool]:
    """Whether (the publisher, the Spark source) would retry after `exc`."""
    return _retryable(exc), _is_retryable(exc)


def test_put_records_body_is_kinesis_json_with_base64_data() -> None:
    records = [
        Record(b'{"a":1}', "BTC-USDT"),
        Record("prix €".encode(), "clé"),
        Record(BINARY, "b"),
    ]
    body = orjson.loads(put_records_body("trades", records))
    assert body["StreamName"] == "trades"
    assert [(base64.b64decode(e["Data"]), e["PartitionKey"]) for e in body["Records"]] == [
        (r.data, r.partition_key) for r in records
    ]
    assert all(set(e) == {"Data", "PartitionKey"} for e in body["Records"])


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("ResourceNotFoundException", "ResourceNotFoundException"),
        (
            "com.amazonaws.kinesis.v20131202#ProvisionedThroughputExceededException",
            "ProvisionedThroughputExceededException",
        ),
        ("ExpiredIteratorException:http://internal.amazon.com/", "ExpiredIteratorException"),
    ],
)
def test_error_codes_are_read_as_botocore_reads_them(error_type: str, code: str) -> None:
    assert error_code(error_type) == code


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (
            400,
            b'{"__type": "a#LimitExceededException", "message": "m1"}',
            "LimitExceededException",
            "m1",
        ),
        (
            400,
            b'{"__type": "KMSThrottlingException", "Message": "m2"}',
            "KMSThrottlingException",
            "m2",
        ),
        (500, b'{"__type": "InternalFailure"}', "InternalFailure", ""),
        (502, b"<html>Bad Gateway</html>", "InternalFailure", "not Kinesis JSON: '<html>Bad"),
        (503, b"", "ServiceUnavailable", "without an error"),
        (200, b"not json", "InternalFailure", "HTTP 200 answer that is not Kinesis JSON"),
        (413, b"<html>too large</html>", "413", "HTTP 413"),
    ],
)
def test_error_answers_become_client_errors_shaped_like_boto3s(
    status: int, body: bytes, code: str, message: str
) -> None:
    with pytest.raises(ClientError) as raised:
        parse_answer("PutRecords", status, {"x-amzn-RequestId": "r-1"}, body)
    error = raised.value
    assert error.operation_name == "PutRecords"
    assert error.response["Error"]["Code"] == code
    assert message in error.response["Error"]["Message"]
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error.response["ResponseMetadata"]["RequestId"] == "r-1"
    # Whatever the service's fault (5xx, garbled answer), both callers retry it.
    retryable = status >= 500 or status == 200 or "Exceeded" in code or "Throttling" in code
    assert retried_by(error) == (retryable, retryable)


def test_error_type_may_come_in_a_header_only() -> None:
    error = client_error("GetRecords", 400, {"X-Amzn-ErrorType": "ExpiredIteratorException"}, b"{}")
    assert error.response["Error"]["Code"] == "ExpiredIteratorException"


def test_answers_drop_top_level_nulls_and_pages_decode_records() -> None:
    body = orjson.dumps(
        {
            "Records": [
                {
                    "SequenceNumber": "1",
                    "Data": base64.b64encode(BINARY).decode(),
                    "PartitionKey": "k",
                    "ApproximateArrivalTimestamp": 1767225600.123,
                }
            ],
            "NextShardIterator": None,
            "MillisBehindLatest": 0,
        }
    )
    answer = parse_answer("GetRecords", 200, {"Content-Type": "application/x-amz-json-1.1"}, body)
    assert "NextShardIterator" not in answer  # as botocore leaves it out
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    (record,) = decode_page(body).Records
    assert record.Data == BINARY
    assert as_datetime(record.ApproximateArrivalTimestamp) == datetime(
        2026, 1, 1, 0, 0, 0, 123000, UTC
    )


# ---------------------------------------------------------------------------------------------
# Against the local endpoint (moto over HTTP): the same answers as boto3
# ---------------------------------------------------------------------------------------------


def shard_iterator(kinesis: Any, stream: str, shard_id: str) -> str:
    answer = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )
    return str(answer["ShardIterator"])


def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "ResponseMetadata"}


def as_datetime(epoch_s: float | None) -> datetime:
    """An arrival time as boto3 gives it (an aware datetime, microseconds)."""
    assert epoch_s is not None
    return datetime.fromtimestamp(epoch_s, UTC)


def get_page(wire: KinesisWire, iterator: str, limit: int) -> WirePage:
    """GetRecords over the wire, decoded as the Spark source decodes it."""
    return decode_page(wire.get_records_raw(iterator, limit))


def as_boto3(page: WirePage) -> dict[str, Any]:
    """A decoded page in boto3's shape: arrival times as datetimes, absent fields left out."""
    answer: dict[str, Any] = {
        "Records": [
            {
                "SequenceNumber": r.SequenceNumber,
                "ApproximateArrivalTimestamp": as_datetime(r.ApproximateArrivalTimestamp),
                "Data": r.Data,
                "PartitionKey": r.PartitionKey,
            }
            for r in page.Records
        ]
    }
    if page.NextShardIterator is not None:
        answer["NextShardIterator"] = page.NextShardIterator
    if page.MillisBehindLatest is not None:
        answer["MillisBehindLatest"] = page.MillisBehindLatest
    return answer


def test_round_trip_keeps_bytes_keys_and_order(kinesis: Any, stream_name: str) -> None:
    wire = wire_for(kinesis)
    records = [
        *(Record(f'{{"n": {n}}}'.encode(), f"key-{n % 5}") for n in range(40)),
        Record("naïve café, 東京, €".encode(), "clé-ü"),
        Record(BINARY, "binary"),
        Record(b"\x00", "nul"),
    ]
    put = wire.put_records(stream_name, records)
    assert put["FailedRecordCount"] == 0
    assert len(put["Records"]) == len(records)

    read: dict[str, list[WireRecord]] = {}
    for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:
        shard_id = shard["ShardId"]
        page = get_page(wire, shard_iterator(kinesis, stream_name, shard_id), 10_000)
        read[shard_id] = page.Records
        sequence_numbers = [int(r.SequenceNumber) for r in page.Records]
        assert sequence_numbers == sorted(sequence_numbers)
        assert len(set(sequence_numbers)) == len(sequence_numbers)
        # The arrival time is the instant boto3 gives.
        if page.Records:
            theirs = kinesis.get_records(
                ShardIterator=shard_iterator(kinesis, stream_name, shard_id)
            )
            ours, boto = page.Records[0], theirs["Records"][0]
            assert as_datetime(ours.ApproximateArrivalTimestamp).tzinfo is not None
            assert (
                as_datetime(ours.ApproximateArrivalTimestamp) == boto["ApproximateArrivalTimestamp"]
            )

    # Every record where PutRecords said it went, with its bytes and key, in put order per shard.
    by_sequence = {
        (r["ShardId"], r["SequenceNumber"]): record
        for r, record in zip(put["Records"], records, strict=True)
    }
    got = {
        (shard_id, r.SequenceNumber): Record(r.Data, r.PartitionKey or "")
        for shard_id, rows in read.items()
        for r in rows
    }
    assert got == by_sequence
    for shard_id, rows in read.items():
        sent = [rec for (s, _), rec in by_sequence.items() if s == shard_id]
        assert [Record(r.Data, r.PartitionKey or "") for r in rows] == sent


def test_a_page_is_exactly_what_boto3_returns(kinesis: Any, stream_name: str) -> None:
    entries = [
        {"Data": f"record {n} ü".encode() + BINARY[n : n + 8], "PartitionKey": f"k{n % 7}"}
        for n in range(60)
    ]
    assert kinesis.put_records(StreamName=stream_name, Records=entries)["FailedRecordCount"] == 0
    wire = wire_for(kinesis)
    shard_id = kinesis.list_shards(StreamName=stream_name)["Shards"][0]["ShardId"]
    iterator = shard_iterator(kinesis, stream_name, shard_id)
    for limit in (5, 10_000):  # a page behind the tip, and one that reaches it
        boto = kinesis.get_records(ShardIterator=iterator, Limit=limit)
        ours = get_page(wire, iterator, limit)  # a non-2xx answer would raise
        assert boto["Records"]
        assert as_boto3(ours) == without_metadata(boto)


def test_kinesis_errors_are_the_client_errors_boto3_raises(kinesis: Any) -> None:
    wire = wire_for(kinesis)
    with pytest.raises(ClientError) as boto:
        kinesis.put_records(
            StreamName="no-such-stream", Records=[{"Data": b"x", "PartitionKey": "k"}]
        )
    with pytest.raises(ClientError) as ours:
        wire.put_records("no-such-stream", [Record(b"x", "k")])
    assert ours.value.response["Error"] == boto.value.response["Error"]
    assert ours.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "no-such-stream" in ours.value.response["Error"]["Message"]
    assert ours.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert str(ours.value) == str(boto.value)
    assert not _retryable(ours.value)


def test_one_wire_per_client(kinesis: Any, aws_env: dict[str, str]) -> None:
    assert wire_for(kinesis) is wire_for(kinesis)
    other = boto3.client("kinesis", region_name=aws_env["AWS_REGION"])
    assert wire_for(other) is not wire_for(kinesis)


# ---------------------------------------------------------------------------------------------
# Against a tiny scripted endpoint: failures Kinesis can answer with
# ---------------------------------------------------------------------------------------------

# (operation, JSON body) -> (status, body)
Respond = Callable[[str, dict[str, Any]], tuple[int, bytes]]


class TinyKinesis:
    """An HTTP/1.1 endpoint on 127.0.0.1 that answers each request with `respond`, recording
    the operation, headers and body of each, and the client port each came from."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.peers: set[int] = set()
        tiny = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            timeout = 5

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                tiny.requests.append((operation, dict(self.headers), body))
                tiny.peers.add(self.client_address[1])
                status, answer = tiny.respond(operation, body)
                # A client that timed out has gone: the answer has nowhere to go.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(answer)))
                    self.send_header("x-amzn-RequestId", f"tiny-{len(tiny.requests)}")
                    self.end_headers()
                    self.wfile.write(answer)
                    self.wfile.flush()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def operations(self) -> list[str]:
        return [operation for operation, _, _ in self.requests]

    def __enter__(self) -> TinyKinesis:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def client_for(endpoint_url: str, **config: Any) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id="AKIDTINY",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def accept_all(body: dict[str, Any]) -> bytes:
    results = [
        {"SequenceNumber": str(10**20 + n), "ShardId": "shardId-000000000000"}
        for n, _ in enumerate(body["Records"])
    ]
    return orjson.dumps({"FailedRecordCount": 0, "Records": results})


THROTTLED = (
    400,
    b'{"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded for shard"}',
)
BAD_GATEWAY = (502, b"<html><body>502 Bad Gateway</body></html>")
GARBLED = (200, b'{"FailedRecordCount": 0, "Rec')


@pytest.fixture
def scripted() -> Iterator[Callable[[Respond], TinyKinesis]]:
    servers: list[TinyKinesis] = []

    def start(respond: Respond) -> TinyKinesis:
        servers.append(TinyKinesis(respond).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__()


def test_requests_are_signed_with_the_clients_credentials_and_kept_alive(
    scripted: Callable[[Respond], TinyKinesis],
) -> None:
    tiny = scripted(lambda _, body: (200, accept_all(body)))
    wire = KinesisWire.from_client(client_for(tiny.endpoint_url))
    for _ in range(3):
        assert wire.put_records("s", [Record(b"x", "k")])["FailedRecordCount"] == 0
    _, headers, body = tiny.requests[0]
    assert headers["X-Amz-Target"] == "Kinesis_20131202.PutRecords"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTINY/")
    assert "/eu-west-1/kinesis/aws4_request" in headers["Authorization"]
    assert body == {"StreamName": "s", "Records": [{"Data": "eA==", "PartitionKey": "k"}]}
    assert len(tiny.peers) == 1  # one connection for the three requests
    wire.close()


def test_credentials_are_read_at_every_request(
    scripted: Callable[[Respond], TinyKinesis],
) -> None:
    # Refreshable credentials rotate in place; the wire must sign with the current ones.
    tiny = scripted(lambda _, body: (200, accept_all(body)))
    credentials = Credentials("AKIDFIRST", "secret", "token-1")
    wire = KinesisWire.from_client(client_for(tiny.endpoint_url), credentials=credentials)
    wire.put_records("s", [Record(b"x", "k")])
    credentials.access_key, credentials.token = "AKIDSECOND", "token-2"
    wire.put_records("s", [Record(b"x", "k")])
    signed = [
        (h["Authorization"].split("/")[0], h["X-Amz-Security-Token"]) for _, h, _ in tiny.requests
    ]
    assert signed == [
        ("AWS4-HMAC-SHA256 Credential=AKIDFIRST", "token-1"),
        ("AWS4-HMAC-SHA256 Credential=AKIDSECOND", "token-2"),
    ]
    wire.close()


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (THROTTLED, "ProvisionedThroughputExceededException"),
        (BAD_GATEWAY, "InternalFailure"),
        (GARBLED, "InternalFailure"),
    ],
    ids=["throttled", "bad-gateway", "garbled"],
)
def test_the_publisher_retries_failed_requests_until_they_succeed(
    scripted: Callable[[Respond], TinyKinesis], failure: tuple[int, bytes], code: str
) -> None:
    calls = 0

    def respond(_: str, body: dict[str, Any]) -> tuple[int, bytes]:
        nonlocal calls
        calls += 1
        return failure if calls <= 2 else (200, accept_all(body))

    tiny = scripted(respond)
    wire = wire_for(client_for(tiny.endpoint_url))
    with pytest.raises(ClientError) as raised:
        wire.put_records("s", [Record(b"x", "k")])
    assert raised.value.response["Error"]["Code"] == code
    assert retried_by(raised.value) == (True, True)

    calls = 0
    counters = ProducerCounters()
    events = trades(20)
    publisher = KinesisPublisher(
        client_for(tiny.endpoint_url), "s", counters, linger_s=0.01, backoff_initial_s=0.001
    )
    asyncio.run(publisher.publish(events))
    assert (counters.published, counters.failed, counters.put_records_calls) == (20, 0, 3)
    sent = [base64.b64decode(e["Data"]) for e in tiny.requests[-1][2]["Records"]]
    assert sent == [to_record(e).data for e in events]
    assert publisher.last_error is None


def test_connection_refused_is_a_botocore_error_both_callers_retry() -> None:
    wire = wire_for(client_for(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(EndpointConnectionError) as raised:
        wire.get_records_raw("iterator", 10)
    assert isinstance(raised.value, BotoCoreError)
    assert retried_by(raised.value) == (True, True)


def test_a_slow_answer_is_a_read_timeout(scripted: Callable[[Respond], TinyKinesis]) -> None:
    def slow(_: str, body: dict[str, Any]) -> tuple[int, bytes]:
        time.sleep(1.0)
        return 200, accept_all(body)

    tiny = scripted(slow)
    wire = KinesisWire.from_client(client_for(tiny.endpoint_url, read_timeout=0.2))
    with pytest.raises(ReadTimeoutError) as raised:
        wire.put_records("s", [Record(b"x", "k")])
    assert retried_by(raised.value) == (True, True)
    wire.close()


def test_the_source_renews_an_expired_iterator_and_retries_throttling_over_the_wire(
    scripted: Callable[[Respond], TinyKinesis],
) -> None:
    record: dict[str, Any] = {
        "SequenceNumber": "49590000000000000000000000000000000000000000000000000001",
        "Data": base64.b64encode(BINARY).decode(),
        "PartitionKey": "k",
        "ApproximateArrivalTimestamp": 1767225600.5,
    }

    def respond(operation: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if operation == "GetShardIterator":
            return 200, b'{"ShardIterator": "fresh"}'
        if body["ShardIterator"] == "stale":
            return 400, b'{"__type": "ExpiredIteratorException", "message": "Iterator expired"}'
        if sum(op == "GetRecords" for op in tiny.operations()) == 2:
            return THROTTLED
        answer = {"Records": [record], "NextShardIterator": "next", "MillisBehindLatest": 0}
        return 200, orjson.dumps(answer)

    tiny = scripted(respond)
    sleeps: list[float] = []
    options = parse_options({"kinesis.streamName": "trades", "kinesis.clientRetryIntervalsMs": "1"})
    api = KinesisApi(client_for(tiny.endpoint_url), options, sleep=sleeps.append)
    cursor = ShardCursor(api, "shardId-000000000000", ShardOffset.trim_horizon(), "stale")
    page = cursor.next_page(100)
    assert tiny.operations() == ["GetRecords", "GetShardIterator", "GetRecords", "GetRecords"]
    assert len(sleeps) == 1  # the throttled call, retried once
    assert [r.Data for r in page.records] == [BINARY]
    assert (
        page.records[0].ApproximateArrivalTimestamp
        == datetime(2026, 1, 1, 0, 0, 0, 500000, UTC).timestamp()
    )
    assert (page.next_iterator, page.caught_up) == ("next", True)
    assert cursor.offset == ShardOffset.trim_horizon().after(record["SequenceNumber"])
