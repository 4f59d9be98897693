"""The producer's figures: normalization on one core against its floor and a peer, and the
publisher against an endpoint that accepts PutRecords at once.

Normalization is measured on the producer's own path, frame by frame, as a connector handles a
frame off its WebSocket: `BaseConnector.on_frame` (parse, counters, trade-id tracking) emits the
`TradeEvent`, and `publisher.to_record` serializes it into the Kinesis record. Nothing is copied
into the benchmark: optimizing the benchmark means optimizing the producer.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench import frames as market
from bench.measure import Figure, Section, ratios
from producer.batching import Record
from producer.connectors import BaseConnector, BinanceConnector, CoinbaseConnector
from producer.events import TradeEvent, iso_from_ms, utc_now_iso
from producer.kinesis_wire import wire_for
from producer.metrics import ProducerCounters
from producer.publisher import to_record
from producer.settings import ProducerSettings, load_settings

NORMALIZE_FRAMES = 100_000
# A normalization run takes about a second, and this machine's speed swings by a quarter from
# one second to the next: the normalization figures take at least this many interleaved runs.
NORMALIZE_MIN_REPEAT = 7
PUBLISH_EVENTS = 100_000

OnFrame = Callable[[bytes], TradeEvent | None]


def bench_settings(**overrides: Any) -> ProducerSettings:
    values: dict[str, Any] = {
        "symbols": market.symbol_map(),
        "exchanges": ("binance", "coinbase"),
        "health_host": "127.0.0.1",
        "health_port": 0,
    }
    values.update(overrides)
    return load_settings(**values)


class NormalizeRun:
    """Fresh connectors (a second pass over the same frames would be all duplicates) and the
    frames paired with the connector that receives them."""

    def __init__(
        self, frames: list[market.Frame], settings: ProducerSettings, *, keep: bool = False
    ) -> None:
        counters = ProducerCounters()
        # What came out, counted after the clock stops: the harness's own bookkeeping is one
        # list append a trade.
        self.made: list[Record] = []
        self._keep_record = self.made.append
        self.kept: list[TradeEvent] | None = [] if keep else None
        self.connectors: dict[str, BaseConnector] = {
            "binance": BinanceConnector(settings, counters.exchange("binance")),
            "coinbase": CoinbaseConnector(settings, counters.exchange("coinbase")),
        }
        for connector in self.connectors.values():
            # What `run` wires to the service's queue (`offer` while it has room).
            connector._emit, connector._offer = self.emit, self.offer
        self.pairs: list[tuple[OnFrame, bytes]] = [
            (self.connectors[f.exchange].on_frame, f.data) for f in frames
        ]
        self.counters = counters

    def offer(self, event: TradeEvent) -> bool:
        self._keep_record(to_record(event))  # what the publisher does with each event it dequeues
        if self.kept is not None:
            self.kept.append(event)
        return True  # the queue always has room here

    async def emit(self, event: TradeEvent) -> None:
        self.offer(event)

    @property
    def records(self) -> int:
        return len(self.made)

    @property
    def record_bytes(self) -> int:
        return sum(len(record.data) for record in self.made)

    async def _drive(self) -> float:
        emit, offer = self.emit, self.offer
        start = time.perf_counter()
        for on_frame, data in self.pairs:  # what `BaseConnector._read` does with each frame
            trade = on_frame(data)
            if trade is not None and not offer(trade):
                await emit(trade)
        return time.perf_counter() - start

    def run(self) -> float:
        """Seconds to take every frame from bytes to a Kinesis record."""
        return asyncio.run(self._drive())


def orjson_floor(datas: list[bytes]) -> float:
    """Seconds for a bare `orjson.loads` of every frame: the cost of reading them at all."""
    loads = orjson.loads
    start = time.perf_counter()
    for data in datas:
        loads(data)
    return time.perf_counter() - start


class MinimalNormalizer:
    """The least Python that turns these frames into the same records: no validation, no
    counters, no trade-id tracking, no objects, no coroutines; one function per exchange, the
    same `orjson` calls and the same clock. Not the producer: the bound on what any CPython
    normalizer built on `orjson.loads`/`orjson.dumps` can reach here."""

    def __init__(self, frames: list[market.Frame]) -> None:
        symbols = market.symbol_map()
        self.canonical = {
            exchange: {p[exchange]: s for s, p in symbols.items() if exchange in p}
            for exchange in ("binance", "coinbase")
        }
        self.pairs = [(f.exchange == "binance", f.data) for f in frames]

    def run(self) -> float:
        loads, dumps, now_iso = orjson.loads, orjson.dumps, utc_now_iso
        binance, coinbase = self.canonical["binance"], self.canonical["coinbase"]
        start = time.perf_counter()
        for is_binance, data in self.pairs:
            ingested = now_iso()
            message = loads(data)
            if is_binance:
                trade = message["data"]
                symbol, trade_id = binance[trade["s"]], trade["t"]
                price, quantity = float(trade["p"]), float(trade["q"])
                side, timestamp = ("sell" if trade["m"] else "buy"), iso_from_ms(trade["T"])
            elif message["type"] == "match":
                symbol, trade_id = coinbase[message["product_id"]], message["trade_id"]
                price, quantity = float(message["price"]), float(message["size"])
                side, timestamp = _TAKER[message["side"]], message["time"]
            else:
                continue  # a heartbeat: nothing to publish
            dumps(
                {
                    "event_id": f"{'binance' if is_binance else 'coinbase'}:{symbol}:{trade_id}",
                    "exchange": "binance" if is_binance else "coinbase",
                    "symbol": symbol,
                    "price": price,
                    "quantity": quantity,
                    "quote_volume": price * quantity,
                    "side": side,
                    "timestamp": timestamp,
                    "ingestion_timestamp": ingested,
                }
            )
        return time.perf_counter() - start


_TAKER = {"buy": "sell", "sell": "buy"}


def normalize(
    section: Section, frames: list[market.Frame], repeat: int, settings: ProducerSettings
) -> None:
    """`producer_normalize_msgs_per_s` and `producer_normalize_vs_orjson_ratio`: the producer's
    runs interleaved with the floor's, so both see the same machine."""
    datas = [f.data for f in frames]
    ours: list[float] = []
    floor: list[float] = []
    minimal: list[float] = []
    bound = MinimalNormalizer(frames)
    check: NormalizeRun | None = None
    for _ in range(max(repeat, NORMALIZE_MIN_REPEAT)):
        floor.append(orjson_floor(datas))
        check = NormalizeRun(frames, settings)
        gc.collect()
        ours.append(check.run())
        minimal.append(bound.run())
    assert check is not None
    trades = sum(1 for f in frames if f.trade is not None)
    if check.records != trades:
        raise RuntimeError(f"normalized {check.records} records from {trades} trades")
    count = len(frames)
    mix = frame_mix(frames)
    section.add(
        Figure(
            "producer_normalize_msgs_per_s",
            [count / s for s in ours],
            "msgs/s",
            f"{count:,} frames ({mix}) through the producer's own path on one core: "
            "`BaseConnector.on_frame` (parse, validate, counters, trade-id tracking) -> "
            "`publisher.to_record` (the serialized unified event), in one asyncio task; at "
            f"least {NORMALIZE_MIN_REPEAT} runs, interleaved with the floor's and the minimal "
            "normalizer's.",
        )
    )
    section.add(
        Figure(
            "producer_normalize_vs_orjson_ratio",
            ratios(ours, floor),
            "x",
            "Time of the producer's path over a bare `orjson.loads` of the same frames (the "
            "floor: reading the JSON at all), runs interleaved.",
        )
    )
    section.add(
        Figure(
            "python_minimal_normalize_vs_orjson_ratio",
            ratios(minimal, floor),
            "x",
            "The same ratio for the least Python that makes the same records from the same "
            "frames (`MinimalNormalizer`: no validation, no counters, no tracking, no objects): "
            "the bound for any CPython normalizer built on orjson, runs interleaved.",
        )
    )
    section.add(
        Figure(
            "orjson_loads_msgs_per_s",
            [count / s for s in floor],
            "msgs/s",
            "The floor alone: `orjson.loads` of each frame, nothing else.",
        )
    )
    section.details["normalize_mix"] = mix
    section.details["record_bytes_mean"] = round(check.record_bytes / max(1, check.records), 1)


def frame_mix(frames: list[market.Frame]) -> str:
    binance = sum(1 for f in frames if f.exchange == "binance")
    matches = sum(1 for f in frames if f.exchange == "coinbase" and f.trade is not None)
    heartbeats = len(frames) - binance - matches
    total = len(frames)
    return (
        f"{binance / total:.0%} Binance `@trade`, {matches / total:.0%} Coinbase `match`, "
        f"{heartbeats / total:.0%} Coinbase `heartbeat`"
    )


def stages(frames: list[market.Frame], settings: ProducerSettings) -> list[dict[str, Any]]:
    """Where a frame's time goes: each stage timed alone over the same frames (best of 3)."""
    run = NormalizeRun(frames, settings)
    exchanges = {name: c.exchange for name, c in run.connectors.items()}
    connectors = run.connectors
    pairs = [(f.exchange, f.data) for f in frames]
    fixed = "2026-01-01T00:00:00.000000Z"
    events = [exchanges[name].parse(data, fixed) for name, data in pairs]
    trades = [e for e in events if isinstance(e, TradeEvent)]

    def loads() -> None:
        for _, data in pairs:
            orjson.loads(data)

    def parse() -> None:
        for name, data in pairs:
            exchanges[name].parse(data, fixed)

    def normalize_() -> None:
        for name, data in pairs:
            connectors[name].normalize(data)

    def serialize() -> None:
        for trade in trades:
            to_record(trade)

    def best(step: Callable[[], None]) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return min(times)

    full = min(NormalizeRun(frames, settings).run() for _ in range(3))
    rows = [
        ("orjson.loads (the floor)", best(loads)),
        ("Exchange.parse: JSON -> validated TradeEvent", best(parse)),
        ("connector.normalize: parse + producer clock", best(normalize_)),
        ("to_record: TradeEvent -> JSON record (per trade)", best(serialize)),
        ("on_frame -> to_record: the whole path", full),
    ]
    count = len(frames)
    return [
        {"stage": name, "us_per_frame": round(seconds / count * 1e6, 3)} for name, seconds in rows
    ]


def profile(frames: list[market.Frame], settings: ProducerSettings, top: int = 18) -> str:
    """cProfile of one normalization run: the functions that hold the time (own time first)."""
    run = NormalizeRun(frames, settings)
    profiler = cProfile.Profile()
    profiler.enable()
    run.run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    return text[start:].rstrip() if start >= 0 else text.rstrip()


# ---- the peer -----------------------------------------------------------------------------


def peer(
    section: Section, frames: list[market.Frame], repeat: int, settings: ProducerSettings
) -> None:
    """cryptofeed's normalization of the same trades, side by side with ours on the very same
    trades (trade frames only: cryptofeed's Coinbase feed has no heartbeat channel)."""
    trade_frames = [f for f in frames if f.trade is not None]
    ours: list[float] = []
    theirs: list[float] = []
    try:
        normalizer = PeerNormalizer([f.trade for f in trade_frames if f.trade is not None])
    except ImportError as exc:
        note = f"cryptofeed is not importable ({exc}); see `make bench`'s pip output"
        for key in ("cryptofeed_normalize_msgs_per_s", "producer_normalize_vs_cryptofeed_ratio"):
            section.add(Figure(key, [], "", "", note=note))
        return
    for _ in range(repeat):
        gc.collect()
        theirs.append(normalizer.run())
        gc.collect()
        ours.append(NormalizeRun(trade_frames, settings).run())
    count = len(trade_frames)
    section.add(
        Figure(
            "cryptofeed_normalize_msgs_per_s",
            [count / s for s in theirs],
            "msgs/s",
            f"cryptofeed {normalizer.version}: the same {count:,} trades as frames of the "
            "dialects it subscribes to (Binance `aggTrade`, Coinbase Advanced Trade "
            "`market_trades`), each through `Feed.message_handler` (its JSON parse, Decimal "
            "prices, `Trade` object, callback) and what its backends do with a trade "
            "(`BackendCallback`: `to_dict` + receipt timestamp, then `yapic.json.dumpb`, the "
            "Kafka backend's serializer). Receipt time `time.time()` per frame, as its "
            "connection does.",
        )
    )
    section.add(
        Figure(
            "producer_normalize_msgs_per_s_trades_only",
            [count / s for s in ours],
            "msgs/s",
            "Ours on the same trades (trade frames only), runs interleaved with the peer's.",
        )
    )
    section.add(
        Figure(
            "producer_normalize_vs_cryptofeed_ratio",
            ratios(ours, theirs),
            "x",
            "Our time over cryptofeed's for the same trades (< 1: we are faster).",
        )
    )


class PeerNormalizer:
    """cryptofeed's Binance and Coinbase feeds, offline: symbols preset, callback in process."""

    def __init__(self, trades: list[Any]) -> None:
        import cryptofeed
        from cryptofeed.defines import TRADES
        from cryptofeed.exchanges import Binance, Coinbase
        from cryptofeed.symbols import Symbols
        from yapic import json as yapic_json

        self.version = getattr(cryptofeed, "__version__", None) or _dist_version("cryptofeed")
        binance = {s: p["binance"] for s, p in market.symbol_map().items() if "binance" in p}
        coinbase = {s: p["coinbase"] for s, p in market.symbol_map().items() if "coinbase" in p}
        # What the feeds would otherwise fetch from the exchanges' REST symbol endpoints.
        Symbols.set("BINANCE", binance, {"tick_size": {}, "instrument_type": {}})
        Symbols.set("COINBASE", coinbase, {"tick_size": {}, "instrument_type": {}})
        dumpb = yapic_json.dumpb
        self.out = 0

        async def backend(trade: Any, receipt_timestamp: float) -> None:
            data = trade.to_dict(numeric_type=float, none_to=None)
            data["receipt_timestamp"] = receipt_timestamp
            self.out += len(dumpb(data))

        feeds = {
            "binance": Binance(
                symbols=list(binance), channels=[TRADES], callbacks={TRADES: backend}
            ),
            "coinbase": Coinbase(
                symbols=list(coinbase),
                channels=[TRADES],
                callbacks={TRADES: backend},
                config={"coinbase": {"key_id": "bench", "key_secret": "bench"}},
            ),
        }
        self.pairs = [
            (feeds[t.exchange].message_handler, market.peer_frame(t).decode()) for t in trades
        ]
        self.count = len(trades)

    async def _drive(self) -> float:
        now = time.time
        start = time.perf_counter()
        for handler, text in self.pairs:
            await handler(text, None, now())
        return time.perf_counter() - start

    def run(self) -> float:
        self.out = 0
        seconds = asyncio.run(self._drive())
        if self.out == 0:
            raise RuntimeError("cryptofeed produced nothing")
        return seconds


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# ---- publishing ---------------------------------------------------------------------------


def publish(section: Section, events: list[TradeEvent], repeat: int) -> None:
    """`producer_publish_msgs_per_s`: `KinesisPublisher.publish` with the producer's default
    batching, through the producer's own client (PutRecords over `producer.kinesis_wire`, built
    from the boto3 client), against `devstack.kinesis_sink` (PutRecords only, answered at once)
    in its own process, so the endpoint's work does not share our GIL."""
    from producer.service import kinesis_client, publisher_for, tune_process

    sink = subprocess.Popen(
        [sys.executable, "-m", "devstack.kinesis_sink", "--no-store"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    try:
        assert sink.stdout is not None
        endpoint = orjson.loads(sink.stdout.readline())["endpoint_url"]
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        interval = sys.getswitchinterval()
        try:
            settings = bench_settings()
            client = kinesis_client(settings)
            tune_process(settings)  # as `python -m producer run` sets up its process
            runs: list[float] = []
            calls = 0
            for _ in range(repeat):
                counters = ProducerCounters()
                publisher = publisher_for(settings, client, counters)
                gc.collect()
                start = time.perf_counter()
                asyncio.run(publisher.publish(events))
                seconds = time.perf_counter() - start
                if counters.published != len(events) or counters.failed:
                    raise RuntimeError(f"published {counters.published} of {len(events)}")
                runs.append(len(events) / seconds)
                calls = counters.put_records_calls
            section.details["publish_profile"] = put_records_profile(client, settings, events)
        finally:
            sys.setswitchinterval(interval)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        sink.terminate()
        sink.wait(10)
    section.add(
        Figure(
            "producer_publish_msgs_per_s",
            runs,
            "msgs/s",
            f"`KinesisPublisher.publish` of {len(events):,} events with the producer's default "
            f"settings (batches of {settings.batch_max_records}, {settings.publish_max_in_flight} "
            f"requests in flight; {calls} PutRecords calls) over the lean PutRecords path "
            "(`producer.kinesis_wire`, from the producer's boto3 client `service.kinesis_client`: "
            "orjson body, botocore's SigV4 signer and HTTP session), against "
            "`devstack.kinesis_sink --no-store` in another process: the endpoint accepts every "
            "entry at once, so this measures the publisher.",
        )
    )


# Where a PutRecords call's CPU goes, by the file its functions live in.
_PUT_STAGES = (
    ("producer/kinesis_wire.py", "producer: the PutRecords body and answer (kinesis_wire)"),
    ("botocore/validate.py", "botocore: parameter validation"),
    ("botocore/serialize.py", "botocore: request serialization (base64, JSON)"),
    ("botocore/parsers.py", "botocore: response parsing"),
    ("botocore/auth.py", "botocore: SigV4 signing"),
    ("botocore/httpsession.py", "HTTP (urllib3, http.client, sockets)"),
    ("botocore/", "botocore: the rest (events, endpoint, retries)"),
    ("urllib3/", "HTTP (urllib3, http.client, sockets)"),
    ("http/client.py", "HTTP (urllib3, http.client, sockets)"),
    ("json/", "botocore: request serialization (base64, JSON)"),
    ("producer/", "producer: records and batching"),
)


def _put_stage(filename: str, function: str) -> str:
    if filename == "~":  # a builtin: name it by what it does
        if "recv" in function or "poll" in function or "select" in function:
            return "waiting for the endpoint's answer (socket)"
        if "send" in function:
            return "HTTP (urllib3, http.client, sockets)"
        if "base64" in function:
            return "base64 of the records' data"
        if "sha256" in function or "hmac" in function or "digest" in function:
            return "botocore: SigV4 signing"
        return "builtins (JSON, str/bytes)"
    return next((name for part, name in _PUT_STAGES if part in filename), "other Python")


def put_records_profile(
    client: Any, settings: ProducerSettings, events: list[TradeEvent], batches: int = 20
) -> dict[str, Any]:
    """cProfile of PutRecords calls as the publisher makes them (same client, same records),
    in one thread: each stage's share of the CPU time, and the top functions; then the same
    calls through boto3's own `put_records`, for comparison (`boto3_cpu_ms_per_call`)."""
    size = settings.batch_max_records
    chunks = [[to_record(e) for e in events[i : i + size]] for i in range(0, size * batches, size)]
    wire = wire_for(client)

    def lean() -> None:
        for records in chunks:
            wire.put_records(settings.stream_name, records)

    def boto3_way() -> None:
        for records in chunks:
            entries = [{"Data": r.data, "PartitionKey": r.partition_key} for r in records]
            client.put_records(StreamName=settings.stream_name, Records=entries)

    profiler, total = _profiled(lean)
    _, boto3_total = _profiled(boto3_way)
    shares: dict[str, float] = {}
    raw: dict[Any, Any] = getattr(pstats.Stats(profiler), "stats", {})
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        stage = _put_stage(filename, function)
        shares[stage] = shares.get(stage, 0.0) + tottime
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(12)
    text = out.getvalue()
    return {
        "calls": len(chunks),
        "records_per_call": size,
        "cpu_ms_per_call": round(total / max(1, len(chunks)) * 1000, 2),
        "boto3_cpu_ms_per_call": round(boto3_total / max(1, len(chunks)) * 1000, 2),
        "shares": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda i: -i[1])},
        "top": text[text.find("   ncalls") :].rstrip(),
    }


def _profiled(work: Callable[[], None]) -> tuple[cProfile.Profile, float]:
    """`work()` under cProfile: the profile and the total own time (seconds)."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    raw: dict[Any, Any] = getattr(pstats.Stats(profiler), "stats", {})
    return profiler, sum(entry[2] for entry in raw.values())


def events(frames: list[market.Frame]) -> list[TradeEvent]:
    """The trades the producer publishes for these frames, in order."""
    run = NormalizeRun(frames, bench_settings(), keep=True)
    run.run()
    assert run.kept is not None
    return run.kept


def records(frames: list[market.Frame]) -> list[Record]:
    """The Kinesis records the producer makes of these frames (what the jobs read)."""
    return [to_record(event) for event in events(frames)]
