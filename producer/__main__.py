"""`python -m producer run | normalize | replay`: settings -> signals -> asyncio.run."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import orjson

from producer.errors import ConfigError
from producer.events import TradeEvent, utc_now_iso
from producer.exchanges import EXCHANGE_CLASSES, Exchange
from producer.exchanges.base import Rejected, Skipped
from producer.logs import configure_logging
from producer.metrics import ProducerCounters
from producer.settings import ProducerSettings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="stream the configured exchanges' trades into Kinesis")
    normalize = commands.add_parser(
        "normalize", help="raw exchange frames (JSON lines, stdin) -> unified events (stdout)"
    )
    normalize.add_argument("--exchange", required=True, choices=sorted(EXCHANGE_CLASSES))
    normalize.add_argument(
        "--all-products", action="store_true", help="also normalize products outside the map"
    )
    replay = commands.add_parser(
        "replay", help="publish a file of recorded frames (or unified events) to the stream"
    )
    replay.add_argument("file", type=Path)
    replay.add_argument(
        "--exchange",
        choices=sorted(EXCHANGE_CLASSES),
        help="the frames' exchange (default: recognised per line; unified events pass as-is)",
    )
    replay.add_argument("--all-products", action="store_true")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "run":
        return run(settings)
    if args.command == "normalize":
        exchange = EXCHANGE_CLASSES[args.exchange](
            settings.symbol_map(), all_products=args.all_products
        )
        return normalize_stream(exchange, sys.stdin, sys.stdout, sys.stderr)
    return replay_file(settings, args.file, args.exchange, args.all_products)


def run(settings: ProducerSettings) -> int:
    from producer.service import ProducerService, kinesis_client, tune_process

    tune_process(settings)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        service = ProducerService(settings, kinesis_client(settings))
        return await service.run(stop)

    import logging

    logging.getLogger(__name__).info("settings", extra={"settings": settings.masked()})
    try:
        return asyncio.run(serve())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def normalize_stream(exchange: Exchange, lines: TextIO, out: TextIO, err: TextIO) -> int:
    """Frames in, unified events out; non-trade frames skipped, bad ones reported on `err`.
    Returns 0, or 1 when some frames were malformed."""
    stats: Counter[str] = Counter()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = exchange.parse(line.rstrip("\n"), utc_now_iso())
        if isinstance(parsed, TradeEvent):
            out.write(parsed.to_json().decode() + "\n")
            stats["trades"] += 1
        elif isinstance(parsed, Rejected):
            stats["rejected"] += 1
            print(f"line {number}: rejected ({parsed.reason}): {parsed.frame}", file=err)
        elif isinstance(parsed, Skipped):
            stats[f"skipped_{parsed.reason}"] += 1
        else:
            stats["non_trade"] += 1
    print(orjson.dumps(dict(sorted(stats.items()))).decode(), file=err)
    return 1 if stats["rejected"] else 0


def detect_exchange(message: object) -> str | None:
    """Which exchange a recorded frame comes from, by its shape."""
    if not isinstance(message, dict):
        return None
    if "stream" in message or "e" in message:
        return "binance"
    if "type" in message:
        return "coinbase"
    return None


def replay_events(
    lines: Iterable[str], exchanges: dict[str, Exchange], forced: str | None
) -> Iterator[TradeEvent | Rejected | Skipped | None]:
    """Recorded lines -> trades (frames are normalized; unified events are taken as they are)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Rejected("invalid_json", line[:500])
            continue
        if isinstance(message, dict) and "event_id" in message:
            yield _unified(message, line)
            continue
        name = forced or detect_exchange(message)
        if name is None:
            yield Rejected("unknown_exchange", line[:500])
            continue
        parsed = exchanges[name].parse(line, utc_now_iso())
        yield parsed if isinstance(parsed, TradeEvent | Rejected | Skipped) else None


def _unified(message: dict[str, object], line: str) -> TradeEvent | Rejected:
    try:
        exchange, symbol, trade_id = str(message["event_id"]).rsplit(":", 2)
        return TradeEvent(
            exchange=exchange,
            symbol=symbol,
            trade_id=int(trade_id),
            price=float(message["price"]),  # type: ignore[arg-type]
            quantity=float(message["quantity"]),  # type: ignore[arg-type]
            side=str(message["side"]),
            timestamp=str(message["timestamp"]),
            ingestion_timestamp=str(message.get("ingestion_timestamp") or utc_now_iso()),
        )
    except (KeyError, TypeError, ValueError):
        return Rejected("bad_unified_event", line[:500])


def replay_file(
    settings: ProducerSettings, path: Path, forced: str | None, all_products: bool
) -> int:
    from producer.service import check_stream, kinesis_client, publisher_for, tune_process

    symbols = settings.symbol_map()
    exchanges = {n: cls(symbols, all_products=all_products) for n, cls in EXCHANGE_CLASSES.items()}
    stats: Counter[str] = Counter()
    events: list[TradeEvent] = []
    with path.open(encoding="utf-8") as lines:
        for item in replay_events(lines, exchanges, forced):
            if isinstance(item, TradeEvent):
                events.append(item)
            elif isinstance(item, Rejected):
                stats[f"rejected_{item.reason}"] += 1
            elif isinstance(item, Skipped):
                stats[f"skipped_{item.reason}"] += 1
            else:
                stats["non_trade"] += 1
    client = kinesis_client(settings)
    try:
        check_stream(client, settings.stream_name)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counters = ProducerCounters()
    tune_process(settings)
    asyncio.run(publisher_for(settings, client, counters).publish(events))
    summary = {"stream": settings.stream_name, "read": len(events), **stats}
    summary.update(published=counters.published, failed=counters.failed)
    print(orjson.dumps(summary).decode())
    return 0 if counters.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
