"""PutRecords and GetRecords straight over Kinesis' JSON protocol, beside a boto3 client.

Why: botocore serializes every request and parses every answer by walking the service model,
entry by entry. A PutRecords of 500 records spent over half its CPU there (bench/RESULTS.md,
"Where the producer's time goes"), and a GetRecords page of thousands of records the same. Here a
request body is one `orjson.dumps` of the base64-encoded entries and an answer one
`orjson.loads`; a GetRecords answer is handed over as it came, for its caller to decode into
what it needs (the Spark source: typed records, with msgspec).

Only these two calls come here; everything else (ListShards, GetShardIterator,
DescribeStreamSummary, DynamoDB, ...) stays on boto3. A `KinesisWire` is built from the boto3
client (`wire_for`), so both use the same endpoint, region, credentials (refreshed temporary
credentials included) and HTTP settings (timeouts, pool size, proxies).

What is borrowed from botocore: SigV4 signing (`SigV4Auth`) and the HTTP session
(`URLLib3Session`: pooled keep-alive connections, TLS, proxies, and connection failures and
timeouts raised as botocore's own `BotoCoreError`s). Errors answered by Kinesis are raised as
`ClientError` with the `response` boto3 would give (`Error.Code`, `Error.Message`,
`ResponseMetadata.HTTPStatusCode`), so callers' retry decisions do not change. There are no
retries here: the publisher and the Spark source each retry on their own schedule.

The wire format (https://docs.aws.amazon.com/kinesis/latest/APIReference/):

    POST /   Content-Type: application/x-amz-json-1.1
             X-Amz-Target: Kinesis_20131202.PutRecords
    {"StreamName": "...", "Records": [{"Data": "<base64>", "PartitionKey": "..."}, ...]}

Answers are JSON; blobs are base64 strings, timestamps epoch seconds (a number); an error is a
non-2xx status with `{"__type": "[namespace#]Code", "message": "..."}` (or `Message`).
"""

from __future__ import annotations

import binascii
import os
import socket
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

import botocore
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.httpsession import URLLib3Session

if TYPE_CHECKING:
    from botocore.credentials import Credentials

    from producer.batching import Record

SERVICE = "kinesis"
CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "Kinesis_20131202."
USER_AGENT = f"crypto-pulse-kinesis-wire botocore/{botocore.__version__}"
# How much of an answer that is not Kinesis JSON goes into the error message.
_SNIPPET_BYTES = 200

# ---------------------------------------------------------------------------------------------
# Pure: request bodies, answers, errors.
# ---------------------------------------------------------------------------------------------


def put_records_body(stream_name: str, records: Iterable[Record]) -> bytes:
    """The PutRecords request: each record's data base64-encoded, in one pass, then one JSON
    dump (1-2 µs a record, against ~10 µs through botocore's serializer)."""
    b64 = binascii.b2a_base64
    return orjson.dumps(
        {
            "StreamName": stream_name,
            "Records": [
                {
                    "Data": b64(r.data, newline=False).decode("ascii"),
                    "PartitionKey": r.partition_key,
                }
                for r in records
            ],
        }
    )


def get_records_body(iterator: str, limit: int) -> bytes:
    return orjson.dumps({"ShardIterator": iterator, "Limit": limit})


class _ResponseMetadata(TypedDict):
    """botocore's `ResponseMetadata` (the shape its stubs give `ClientError.response`)."""

    RequestId: str
    HostId: str
    HTTPStatusCode: int
    HTTPHeaders: dict[str, Any]
    RetryAttempts: int


def response_metadata(status: int, headers: Mapping[str, str]) -> _ResponseMetadata:
    """`ResponseMetadata` as boto3 puts it in every answer and error (header names lowered)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return {
        "RequestId": lowered.get("x-amzn-requestid", ""),
        "HostId": "",
        "HTTPStatusCode": status,
        "HTTPHeaders": lowered,
        "RetryAttempts": 0,
    }


def error_code(error_type: str) -> str:
    """`com.amazonaws.kinesis.v20131202#ExpiredIteratorException:details` ->
    `ExpiredIteratorException` (botocore's rule: drop what follows ':', keep what follows '#')."""
    return error_type.split(":", 1)[0].rsplit("#", 1)[-1]


def _status_code(status: int) -> str:
    """The code of an answer that names none. A 5xx (or a garbled 2xx) is the service's fault and
    worth retrying, so it gets a code both callers' retry lists know; anything else is named by
    its status, as botocore does."""
    if status == 503:
        return "ServiceUnavailable"
    if status >= 500 or status < 300:
        return "InternalFailure"
    return str(status)


def client_error(
    operation: str, status: int, headers: Mapping[str, str], body: bytes
) -> ClientError:
    """The `ClientError` boto3 raises for this answer: code and message from the JSON error
    (`__type`, else the `x-amzn-ErrorType` header), else from the status; a body that is not
    JSON is quoted (truncated) in the message."""
    try:
        parsed: Any = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        snippet = body[:_SNIPPET_BYTES].decode("utf-8", "replace")
        code = _status_code(status)
        message = f"HTTP {status} answer that is not Kinesis JSON: {snippet!r}"
    else:
        error_type = parsed.get("__type") or _header(headers, "x-amzn-errortype")
        code = error_code(str(error_type)) if error_type else _status_code(status)
        message = str(parsed.get("message", parsed.get("Message", "")) or "")
        if not message and not error_type:
            message = f"HTTP {status} without an error in the answer"
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": response_metadata(status, headers),
        },
        operation,
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def parse_answer(
    operation: str, status: int, headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    """A Kinesis answer as a dict (with `ResponseMetadata`), or its `ClientError` raised.

    As botocore does, top-level nulls are dropped (a closed shard's last page may carry
    `"NextShardIterator": null`; boto3 leaves the key out)."""
    if not 200 <= status < 300:
        raise client_error(operation, status, headers, body)
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise client_error(operation, status, headers, body)
    answer = {key: value for key, value in parsed.items() if value is not None}
    answer["ResponseMetadata"] = response_metadata(status, headers)
    return answer


# ---------------------------------------------------------------------------------------------
# I/O: signing and sending.
# ---------------------------------------------------------------------------------------------


class KinesisWire:
    """PutRecords and GetRecords over HTTP; thread-safe (each call signs and sends its own
    request; the connection pool and the credentials' refresh are botocore's, both locked).

    `credentials` are asked for their frozen form on every request, so refreshable temporary
    credentials (an instance role, an assumed role) keep working after they rotate."""

    def __init__(
        self,
        endpoint_url: str,
        region_name: str,
        credentials: Credentials | None,
        http: URLLib3Session,
    ) -> None:
        self.url = endpoint_url if urlsplit(endpoint_url).path else endpoint_url + "/"
        self.region_name = region_name
        self._credentials = credentials
        self._http = http

    @classmethod
    def from_client(
        cls,
        client: BaseClient,
        *,
        credentials: Credentials | None = None,
        verify: bool | str | None = None,
    ) -> KinesisWire:
        """A wire with the client's endpoint, region, credentials and HTTP settings.

        The credentials: `client._get_credentials()`, the accessor boto3 itself uses to hand a
        client's credentials to its CRT transfer client (`boto3.crt`), unless given. The TLS
        check: `verify` (a CA bundle path, or False), else AWS_CA_BUNDLE, else the default
        trust store; a client made with `verify=...` has no public way to say so."""
        region_name = client.meta.region_name
        if not region_name:
            raise ValueError("the Kinesis client has no region: SigV4 needs one")
        if credentials is None:
            credentials = _client_credentials(client)
        # Any: botocore sets Config's options as attributes; its stubs only type __init__.
        config: Any = client.meta.config
        socket_options: Any = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        if config.tcp_keepalive:
            socket_options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        # A (connect, read) pair, as botocore's own endpoint passes it (its stubs say int).
        timeout: Any = (config.connect_timeout, config.read_timeout)
        tls: Any = verify if verify is not None else os.environ.get("AWS_CA_BUNDLE") or True
        http = URLLib3Session(
            verify=tls,
            proxies=config.proxies,
            timeout=timeout,
            max_pool_connections=config.max_pool_connections or 10,
            socket_options=socket_options,
            client_cert=config.client_cert,
            proxies_config=config.proxies_config,
        )
        return cls(client.meta.endpoint_url, region_name, credentials, http)

    def put_records(self, stream_name: str, records: Iterable[Record]) -> dict[str, Any]:
        """PutRecords: `FailedRecordCount` and, per record in order, `SequenceNumber` and
        `ShardId` or `ErrorCode` and `ErrorMessage`."""
        return self.call("PutRecords", put_records_body(stream_name, records))

    def get_records_raw(self, iterator: str, limit: int) -> bytes:
        """GetRecords' answer as it came, JSON bytes (blobs base64, times epoch seconds), for the
        caller to decode (the Spark source decodes pages straight into typed records with
        msgspec: `kinesis_source.decode_page`); errors as `call`'s."""
        status, headers, body = self.send("GetRecords", get_records_body(iterator, limit))
        if not 200 <= status < 300:
            raise client_error("GetRecords", status, headers, body)
        return body

    def call(self, operation: str, body: bytes) -> dict[str, Any]:
        """One signed request; the parsed answer, or `ClientError` / `BotoCoreError`."""
        return parse_answer(operation, *self.send(operation, body))

    def send(self, operation: str, body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """One signed request: the answer's status, headers and body, whatever the status;
        `BotoCoreError` when no answer came."""
        if self._credentials is None:
            raise NoCredentialsError()
        request = AWSRequest(
            method="POST",
            url=self.url,
            headers={
                "Content-Type": CONTENT_TYPE,
                "X-Amz-Target": TARGET_PREFIX + operation,
                "User-Agent": USER_AGENT,
            },
            data=body,
        )
        frozen = self._credentials.get_frozen_credentials()
        SigV4Auth(frozen, SERVICE, self.region_name).add_auth(request)
        response = self._http.send(request.prepare())
        return response.status_code, response.headers, response.content

    def close(self) -> None:
        self._http.close()


def _client_credentials(client: BaseClient) -> Credentials | None:
    getter = getattr(client, "_get_credentials", None)
    if getter is None:
        raise TypeError(
            f"botocore {botocore.__version__} clients have no _get_credentials(): pass the "
            "credentials to KinesisWire.from_client"
        )
    credentials: Credentials | None = getter()
    return credentials


_wires: weakref.WeakKeyDictionary[BaseClient, KinesisWire] = weakref.WeakKeyDictionary()
_wires_lock = threading.Lock()


def wire_for(client: BaseClient) -> KinesisWire:
    """The wire of this boto3 client, made on first use and kept while the client lives, so that
    everything sharing a client (the Spark source's readers in one worker, successive
    publishers) shares one connection pool too."""
    with _wires_lock:
        wire = _wires.get(client)
        if wire is None:
            wire = _wires[client] = KinesisWire.from_client(client)
        return wire
