"""moto's server with one request at a time, and a fast path for Kinesis' hot calls.

moto's backends are not thread-safe: concurrent PutRecords calls on one stream lose records
(seen with four publisher requests in flight). Real AWS has no such race, so the local endpoint
serializes requests behind one lock while still accepting connections on several threads.

moto 5.2's Kinesis shard finds its latest sequence number by listing every record it holds, for
every record put: PutRecords slows down as the stream grows (1 400 records/s on average while
loading 50 000 records, 6 000 with the fix). `fast_shard_ends` makes that lookup O(1); the
numbers are the same.

moto 5's Kinesis handlers return `ActionResult`s, which its generic serializer walks through the
service model for every field of every record; the request side re-parses the whole JSON body
for every parameter (`_get_param`); and a shard's `get_records` scans the shard from its first
record on every call. In-process under cProfile, 4.99 of the 5.41 s spent answering GetRecords
for 20 000 records went to the serializer, and 3.8 of the 5.5 s spent on 40 PutRecords of 500
to serializing their 500-entry answers. `fast_kinesis` (applied in `main`, in this process only)
replaces GetRecords, PutRecords and PutRecord: the body is parsed once (orjson), the answer is
written directly as the bytes moto's serializer writes (same keys in the same order, same
types; each record's JSON is kept on the record once written), and a page is found by
arithmetic on the consecutive sequence numbers. Errors are moto's: its backend raises them as
before, and whatever the fast paths do not cover (an odd Limit, another protocol, parameters
outside the JSON body, a record of an unexpected shape) goes to moto's own handler or
serializer. tests/devstack/test_moto_server.py checks the answers against moto's own, byte for
byte.

A bare boto3 loop on a 2-shard stream, 50 000 records of 250 bytes (a shared, busy 2-core
machine; median and best of eight runs each): PutRecords in batches of 500 went from 6 400
(best 7 200) to 11 600 (14 600) records/s, GetRecords (Limit 10 000) from 6 700 (7 800) to
16 800 (19 200). A 10 000-record page now takes the server 0.15-0.2 s to write the first time
and 0.03-0.05 s again (0.8-1.6 s before): most of what is left is the boto3 client (botocore
parses every record's timestamp); for puts, moto's backend itself (30-40 µs a record).

    python -m devstack.moto_server -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii  # what json.dumps writes a str with
from typing import Any

import orjson
from botocore.utils import parse_to_aware_datetime
from moto import settings as moto_settings
from moto.core.responses import ActionResult, BaseResponse
from moto.core.serialize import TimestampSerializer
from moto.core.utils import get_service_model
from moto.kinesis.models import Record, Shard
from moto.kinesis.responses import KinesisResponse
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class SerializedApp:
    """A WSGI wrapper that lets one request at a time into the wrapped application."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            # Consume the response inside the lock: moto builds it lazily in some handlers.
            return list(self.app(environ, start_response))


def fast_shard_ends() -> None:
    """A shard's first and last sequence numbers without listing its records: they are the keys
    of an insertion-ordered dict that only ever grows by `max + 1` (or is replaced whole)."""

    def first(shard: Shard) -> int:
        return next(iter(shard.records), 0)

    def last(shard: Shard) -> int:
        return next(reversed(shard.records), 0)

    setattr(Shard, "get_min_sequence_number", first)  # noqa: B010 - a patch, typed loosely
    setattr(Shard, "get_max_sequence_number", last)  # noqa: B010


# moto's own code, as imported (before any patch): the fast paths fall back to it.
MOTO_SHARD_GET_RECORDS = Shard.get_records
MOTO_GET_RECORDS = KinesisResponse.get_records
MOTO_PUT_RECORDS = KinesisResponse.put_records
MOTO_PUT_RECORD = KinesisResponse.put_record

# What moto's JSON serializer answers Kinesis (jsonVersion 1.1) with.
AMZ_JSON = "application/x-amz-json-1.1"
EPOCH = datetime(1970, 1, 1)

Handled = ActionResult | tuple[int, dict[str, str], bytes]


def _plain_limit(limit: object) -> bool:
    """A GetRecords limit the fast paths serve: absent or a positive int. moto treats anything
    else (0, a negative number, a float, a string) in its own odd ways; it keeps those."""
    return limit is None or (type(limit) is int and limit >= 1)


def shard_records_after(
    shard: Shard, last_sequence_id: str, limit: int | None
) -> tuple[list[Record], int, int]:
    """`Shard.get_records` without scanning the shard from its first record on every call.

    A shard's records dict is keyed by sequence number, each key `max + 1` when put (or the dict
    is replaced whole): the keys are consecutive ints, so the first record after the iterator's
    position is found by arithmetic, and a page is `limit` dict lookups. The answer is moto's:
    the records, the sequence number the next iterator starts after, and the milliseconds from
    the page's last record to the shard's newest."""
    last = int(last_sequence_id)
    records = shard.records
    if not records:
        return [], last, 0
    first_key = next(iter(records))
    last_key = next(reversed(records))
    if last_key - first_key + 1 != len(records) or not _plain_limit(limit):
        return MOTO_SHARD_GET_RECORDS(shard, last_sequence_id, limit)
    start = max(last + 1, first_key)
    stop = last_key if limit is None else min(last_key, start + limit - 1)
    if start > stop:
        return [], last, 0
    page = [records[number] for number in range(start, stop + 1)]
    behind = records[last_key].created_at - page[-1].created_at
    return page, stop, int(behind * 1000)


def _json_params(response: BaseResponse, names: Sequence[str]) -> dict[str, Any] | None:
    """The request's JSON body, parsed once (moto's `_get_param` parses the whole body again for
    every parameter), or None wherever moto might read the parameters or write the answer
    differently: parameters in the query string or URL, a body that is not a JSON object (or
    that orjson and json could read differently), a protocol other than JSON, pretty-printing."""
    if (
        response.automated_parameter_parsing
        or response.uri_match
        or moto_settings.PRETTIFY_RESPONSES
        or any(name in response.querystring for name in names)
    ):
        return None
    try:
        service = get_service_model(response.boto3_service_name)
        if response.determine_response_protocol(service) != "json":
            return None
        params = orjson.loads(response.body)
    except (NotImplementedError, TypeError, orjson.JSONDecodeError):
        return None
    return params if isinstance(params, dict) else None


def _arrival_time(created: datetime) -> int | float:
    """A record's ApproximateArrivalTimestamp as moto's JSON serializer gives it: epoch seconds
    truncated to the millisecond, an int when the time has no microseconds. moto stores a naive
    UTC datetime; computed here without the serializer's timetuple round trip."""
    if type(created) is not datetime or created.tzinfo is not None:
        anything: Any = created  # botocore's stub says str; it takes datetimes
        return TimestampSerializer._timestamp_unixtimestamp(parse_to_aware_datetime(anything))
    since = created - EPOCH
    seconds = since.days * 86400 + since.seconds
    micros = created.microsecond
    return seconds + (micros // 1000) / 1000.0 if micros else seconds


def _record_json(record: Record) -> str:
    """One record as moto's serializer writes it: `json.dumps` of the output shape's members in
    the model's order (the sequence number as a string, the arrival time, the data base64-encoded
    again, the partition key; no EncryptionType: moto's records have none). Kept on the record,
    which never changes once put: a record read again costs a list item."""
    cached = record.__dict__.get("_fast_json")
    if cached is None:
        number, partition_key = record.sequence_number, record.partition_key
        if type(number) is not int or type(partition_key) is not str:
            raise TypeError(f"record {number!r} {partition_key!r}")
        data = base64.b64encode(base64.b64decode(record.data)).decode()
        cached = (
            f'{{"SequenceNumber": "{number}", '
            f'"ApproximateArrivalTimestamp": {_arrival_time(record.created_at_datetime)!r}, '
            f'"Data": "{data}", "PartitionKey": {encode_basestring_ascii(partition_key)}}}'
        )
        record.__dict__["_fast_json"] = cached
    return str(cached)


def get_records_body(
    next_iterator: str | None, records: Iterable[Record], millis: int | None
) -> bytes:
    """GetRecords' answer, byte for byte what moto's serializer writes for the same result."""
    parts = ['{"Records": [', ", ".join([_record_json(record) for record in records]), "]"]
    if next_iterator is not None:
        parts.append(', "NextShardIterator": ' + json.dumps(str(next_iterator)))
    if millis is not None:
        parts.append(', "MillisBehindLatest": ' + str(int(millis)))
    parts.append("}")
    return "".join(parts).encode()


def fast_get_records(response: KinesisResponse) -> Handled:
    """KinesisResponse.get_records with the answer written directly (moto's generic serializer
    walks the service model for every field of every record: 5 of the 5.4 s a GetRecords of
    10 000 records took in-process under cProfile)."""
    params = _json_params(response, ("StreamARN", "ShardIterator", "Limit"))
    limit = None if params is None else params.get("Limit")
    if params is None or not _plain_limit(limit):
        return MOTO_GET_RECORDS(response)
    backend: Any = response.kinesis_backend  # the parameters go to it as moto passes them
    next_iterator, records, millis = backend.get_records(
        params.get("StreamARN"), params.get("ShardIterator"), limit
    )
    try:
        body = get_records_body(next_iterator, records, millis)
    except (TypeError, ValueError):  # a record moto stored oddly: its serializer decides
        return ActionResult(
            {
                "NextShardIterator": next_iterator,
                "Records": [record.to_json() for record in records],
                "MillisBehindLatest": millis,
            }
        )
    return 200, {"Content-Type": AMZ_JSON}, body


def put_records_body(result: object) -> bytes | None:
    """PutRecords' answer as moto's serializer writes it, or None for a result of another shape."""
    if not isinstance(result, dict) or result.keys() != {"FailedRecordCount", "Records"}:
        return None
    count, entries = result["FailedRecordCount"], result["Records"]
    if type(count) is not int or not isinstance(entries, list):
        return None
    written = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.keys() != {"SequenceNumber", "ShardId"}:
            return None
        sequence_number, shard_id = entry["SequenceNumber"], entry["ShardId"]
        if type(sequence_number) is not str or type(shard_id) is not str:
            return None
        written.append({"SequenceNumber": sequence_number, "ShardId": shard_id})
    return json.dumps({"FailedRecordCount": count, "Records": written}).encode()


def fast_put_records(response: KinesisResponse) -> Handled:
    """KinesisResponse.put_records with the body parsed once and the answer written directly."""
    params = _json_params(response, ("StreamARN", "StreamName", "Records"))
    if params is None:
        return MOTO_PUT_RECORDS(response)
    backend: Any = response.kinesis_backend
    result = backend.put_records(
        params.get("StreamARN"), params.get("StreamName"), params.get("Records")
    )
    body = put_records_body(result)
    if body is None:
        return ActionResult(result)
    return 200, {"Content-Type": AMZ_JSON}, body


def fast_put_record(response: KinesisResponse) -> Handled:
    """KinesisResponse.put_record with the body parsed once and the answer written directly."""
    params = _json_params(
        response, ("StreamARN", "StreamName", "PartitionKey", "ExplicitHashKey", "Data")
    )
    if params is None:
        return MOTO_PUT_RECORD(response)
    backend: Any = response.kinesis_backend
    sequence_number, shard_id = backend.put_record(
        params.get("StreamARN"),
        params.get("StreamName"),
        params.get("PartitionKey"),
        params.get("ExplicitHashKey"),
        params.get("Data"),
    )
    if type(sequence_number) is not str or type(shard_id) is not str:
        return ActionResult({"SequenceNumber": sequence_number, "ShardId": shard_id})
    body = json.dumps({"ShardId": shard_id, "SequenceNumber": sequence_number})
    return 200, {"Content-Type": AMZ_JSON}, body.encode()


def fast_kinesis() -> None:
    """Kinesis' hot calls without moto's generic request parsing and response serializing, and
    GetRecords without a scan of the shard. Errors are moto's: the backend raises them as before,
    and anything the fast paths do not cover goes to moto's own handler.

    A handler's answer as bytes also skips moto's `_enrich_response`, which runs a regex for an
    XML `<RequestId>` over every str body (it fails on bytes, and moto ignores that)."""
    setattr(Shard, "get_records", shard_records_after)  # noqa: B010 - a patch, typed loosely
    setattr(KinesisResponse, "get_records", fast_get_records)  # noqa: B010
    setattr(KinesisResponse, "put_records", fast_put_records)  # noqa: B010
    setattr(KinesisResponse, "put_record", fast_put_record)  # noqa: B010


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    fast_shard_ends()
    fast_kinesis()
    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
