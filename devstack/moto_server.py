"""moto's server with one request at a time.

moto's backends are not thread-safe: concurrent PutRecords calls on one stream lose records
(seen with four publisher requests in flight). Real AWS has no such race, so the local endpoint
serializes requests behind one lock while still accepting connections on several threads.

moto 5.2's Kinesis shard finds its latest sequence number by listing every record it holds, for
every record put: PutRecords slows down as the stream grows (1 400 records/s on average while
loading 50 000 records, 6 000 with the fix). `fast_shard_ends` makes that lookup O(1); the
numbers are the same.

    python -m devstack.moto_server -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.kinesis.models import Shard
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    fast_shard_ends()
    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
