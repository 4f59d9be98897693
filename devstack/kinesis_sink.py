"""A Kinesis endpoint that only takes PutRecords, instantly, and can fail chosen entries.

It speaks the real wire protocol (JSON 1.1, `X-Amz-Target: Kinesis_20131202.PutRecords`), so a
boto3 client pointed at it exercises the publisher's real request path. Uses: partial-failure
tests (`fail_entry` decides per entry attempt) and the publisher benchmark (measures the
publisher, not an emulator).

    python -m devstack.kinesis_sink [--port 0]     # prints {"endpoint_url": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

TARGET_PREFIX = "Kinesis_20131202."
STREAM_ARN_PREFIX = "arn:aws:kinesis:us-east-1:000000000000:stream/"

# (entry attempt number counted from 0 over the sink's life, the record's data) -> error code
FailEntry = Callable[[int, bytes], str | None]


@dataclass
class SinkState:
    stream_name: str = "crypto-pulse-trades"
    fail_entry: FailEntry | None = None
    store: bool = True
    records: list[tuple[str, bytes]] = field(default_factory=list)  # (partition key, data)
    requests: int = 0
    entry_attempts: int = 0
    failed_entries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_app(state: SinkState) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        body = orjson.loads(await request.read() or b"{}")
        operation = target.removeprefix(TARGET_PREFIX)
        if operation == "PutRecords":
            return _json(_put_records(state, body))
        if operation == "DescribeStreamSummary":
            return _json(
                {
                    "StreamDescriptionSummary": {
                        "StreamName": state.stream_name,
                        "StreamARN": f"{STREAM_ARN_PREFIX}{state.stream_name}",
                        "StreamStatus": "ACTIVE",
                        "RetentionPeriodHours": 24,
                        "StreamCreationTimestamp": 0,
                        "EnhancedMonitoring": [],
                        "OpenShardCount": 1,
                    }
                }
            )
        return _json({"__type": "UnknownOperationException", "message": operation}, status=400)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/", handle)
    return app


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/x-amz-json-1.1"
    )


def _put_records(state: SinkState, body: dict[str, object]) -> dict[str, object]:
    results: list[dict[str, str]] = []
    failed = 0
    entries = body.get("Records") or []
    assert isinstance(entries, list)
    with state.lock:
        state.requests += 1
        if not state.store and state.fail_entry is None:
            # Counting only (the publisher benchmark): the answer without decoding the data.
            first = state.entry_attempts
            state.entry_attempts += len(entries)
            return {
                "FailedRecordCount": 0,
                "Records": [
                    {"SequenceNumber": str(10**20 + first + n), "ShardId": "shardId-000000000000"}
                    for n in range(len(entries))
                ],
            }
        for entry in entries:
            data = base64.b64decode(entry["Data"])
            attempt = state.entry_attempts
            state.entry_attempts += 1
            code = state.fail_entry(attempt, data) if state.fail_entry else None
            if code:
                failed += 1
                results.append({"ErrorCode": code, "ErrorMessage": f"injected {code}"})
                continue
            if state.store:
                state.records.append((str(entry["PartitionKey"]), data))
            results.append(
                {"SequenceNumber": str(10**20 + attempt), "ShardId": "shardId-000000000000"}
            )
        state.failed_entries += failed
    return {"FailedRecordCount": failed, "Records": results}


class KinesisSink:
    """The sink on its own event loop in a background thread; a context manager."""

    def __init__(self, state: SinkState | None = None, host: str = "127.0.0.1") -> None:
        self.state = state or SinkState()
        self.host = host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> KinesisSink:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def start() -> None:
            self._runner = web.AppRunner(make_app(self.state), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, 0)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="kinesis-sink", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("kinesis sink did not start")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._thread is not None
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.kinesis_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-store", action="store_true", help="count records, keep none")
    args = parser.parse_args(argv)

    async def serve() -> None:
        runner = web.AppRunner(make_app(SinkState(store=not args.no_store)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        port = int(sockets[0].getsockname()[1])
        print(orjson.dumps({"endpoint_url": f"http://{args.host}:{port}"}).decode(), flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
