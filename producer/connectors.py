"""Exchange connectors: the WebSocket and REST I/O around the pure exchange protocols.

A connector keeps one WebSocket open (reconnecting with capped, jittered backoff; a staleness
watchdog reconnects a connection that went silent), turns frames into trades through its
`Exchange`, and hands every trade id exactly once to `emit`. A `TradeIdTracker` per product finds
gaps (an id jump, a heartbeat ahead of us, the time spent reconnecting), and a backfill task
fetches the missing ids from the exchange's REST trades endpoint, honouring its rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from producer.errors import BackfillError, ExchangeProtocolError
from producer.events import TradeEvent, utc_now_iso
from producer.exchanges import Binance, Coinbase, Exchange
from producer.exchanges.base import (
    Control,
    ExchangeErrorFrame,
    Heartbeat,
    Parsed,
    Rejected,
    ServerShutdown,
    Skipped,
)
from producer.gaps import TradeIdTracker
from producer.metrics import ExchangeCounters
from producer.pacing import Backoff, RateLimiter, Spacing
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)

Emit = Callable[[TradeEvent], Awaitable[None]]
# Hands a trade over if that needs no waiting (True), else leaves it to `Emit` (False): the live
# path then pays no coroutine per trade while the queue has room.
Offer = Callable[[TradeEvent], bool]

# A close handshake the peer does not finish in this time is abandoned (the TCP close follows).
CLOSE_TIMEOUT_S = 2.0
# How often the backfill task retries ranges the REST endpoint did not serve yet.
BACKFILL_RETRY_S = 1.0
# After this many rounds without progress on a range, the ids are declared unrecoverable.
BACKFILL_MAX_ROUNDS = 30


@dataclass(frozen=True)
class ConnectorHealth:
    exchange: str
    connected: bool
    seconds_since_last_frame: float | None
    missing_trade_ids: int


class _Reconnect(Exception):  # noqa: N818 - control flow, not an error
    """Leave the current connection and open a new one (rotation, server shutdown, staleness)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BaseConnector(ABC):
    """One exchange: connect, normalize, health_check, shutdown, and the `run` loop tying them."""

    def __init__(
        self,
        exchange: Exchange,
        settings: ProducerSettings,
        counters: ExchangeCounters,
        *,
        ws_url: str,
        rest_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self._parse = exchange.parse  # once per frame: bound once
        self.settings = settings
        self.counters = counters
        self.ws_url = ws_url.rstrip("/")
        self.rest_url = rest_url.rstrip("/")
        self.clock = clock
        self.trackers: dict[str, TradeIdTracker] = {
            p: TradeIdTracker() for p in exchange.products()
        }
        # canonical symbol -> this exchange's product (the tracker key of a trade)
        self._products = exchange.symbols.natives_by_symbol(exchange.name)
        # canonical symbol -> the tracker of a configured product (`on_frame`'s one lookup)
        self._tracker_of = {
            symbol: self.trackers[product]
            for symbol, product in self._products.items()
            if product in self.trackers
        }
        self._catch_up: set[str] = set()  # products to re-read from REST after a reconnect
        self._backfill_wanted = asyncio.Event()
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._http: aiohttp.ClientSession | None = None
        self._emit: Emit | None = None
        self._offer: Offer | None = None
        self._last_frame_at: float | None = None
        self._connections = 0

    @property
    def name(self) -> str:
        return self.exchange.name

    # -- the BaseConnector contract -------------------------------------------------------------

    @abstractmethod
    async def connect(self) -> ClientConnection:
        """Open the WebSocket and subscribe; returns the open connection."""

    def normalize(self, frame: bytes | str) -> Parsed:
        """One frame -> what it means (pure, never raises)."""
        return self.exchange.parse(frame, utc_now_iso())

    def health_check(self) -> ConnectorHealth:
        since = None if self._last_frame_at is None else self.clock() - self._last_frame_at
        return ConnectorHealth(
            exchange=self.name,
            connected=self.counters.connected,
            seconds_since_last_frame=since,
            missing_trade_ids=sum(t.missing_count for t in self.trackers.values()),
        )

    async def shutdown(self) -> None:
        """Stop intake: close the connection and end `run` (backfills in progress stop too)."""
        self._stopping.set()
        self._backfill_wanted.set()
        if self._ws is not None:
            await self._ws.close()

    # -- exchange specifics for the REST side ---------------------------------------------------

    @abstractmethod
    async def fetch_range(self, product: str, low: int, high: int | None) -> None:
        """Fetch trades with ids in [low, high] (high None: up to the latest) and pass each
        through the product's tracker to `emit`."""

    # -- the loops ------------------------------------------------------------------------------

    async def run(self, emit: Emit, offer: Offer) -> None:
        """Until `shutdown`: keep a connection, emit every trade once, backfill every gap.
        `offer` takes each live trade it can without waiting; `emit` (which may wait:
        backpressure) gets the rest, and the backfilled trades."""
        self._emit = emit
        self._offer = offer
        timeout = aiohttp.ClientTimeout(total=self.settings.rest_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http, asyncio.TaskGroup() as tasks:
            self._http = http
            tasks.create_task(self._connection_loop(), name=f"{self.name}-ws")
            tasks.create_task(self._backfill_loop(), name=f"{self.name}-backfill")
        self._http = None

    async def _connection_loop(self) -> None:
        backoff = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s)
        while not self._stopping.is_set():
            opened_at = self.clock()
            reason = "closed"
            try:
                await self._prime()
                self._ws = await self.connect()
                self._connections += 1
                self.counters.connected = True
                log.info("connected", extra={"exchange": self.name, "url": self.ws_url})
                if self._connections > 1:
                    self._request_catch_up()
                await self._read(self._ws, opened_at)
            except _Reconnect as planned:
                reason = planned.reason
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except ExchangeProtocolError as exc:
                reason = str(exc)
            finally:
                self.counters.connected = False
                if self._ws is not None:
                    await self._ws.close()
                    self._ws = None
            if self._stopping.is_set():
                break
            self.counters.reconnects += 1
            if reason == "rotation":
                delay = 0.0
            else:
                if self.clock() - opened_at >= self.settings.healthy_after_s:
                    backoff.reset()
                delay = backoff.next_delay()
            log.warning(
                "disconnected; reconnecting",
                extra={"exchange": self.name, "reason": reason, "delay_s": round(delay, 3)},
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    def rotate_after_s(self) -> float | None:
        """Seconds after which a healthy connection is replaced (exchange connection limits)."""
        return None

    async def _read(self, ws: ClientConnection, opened_at: float) -> None:
        stale_after = self.settings.stale_after_s
        rotate_after = self.rotate_after_s()
        emit, offer = self._emit, self._offer
        assert emit is not None
        assert offer is not None
        while True:
            wait = stale_after
            if rotate_after is not None:
                until_rotation = opened_at + rotate_after - self.clock()
                if until_rotation <= 0:
                    self.counters.rotations += 1
                    raise _Reconnect("rotation")
                wait = min(wait, until_rotation)
            try:
                async with asyncio.timeout(wait):
                    frame = await ws.recv()
            except TimeoutError:
                last = self._last_frame_at if self._last_frame_at is not None else opened_at
                if self.clock() - max(last, opened_at) >= stale_after:
                    self.counters.stale_reconnects += 1
                    raise _Reconnect(f"stale: no frame for {stale_after} s") from None
                continue
            trade = self.on_frame(frame)
            if trade is not None and not offer(trade):
                await emit(trade)

    def on_frame(self, frame: bytes | str) -> TradeEvent | None:
        """One frame off the WebSocket: normalize it and act on what it means; returns the
        trade to emit, if there is one. (Not a coroutine: one await a trade, on the emit, is
        all the hot path pays for.)"""
        self._last_frame_at = self.clock()
        parsed = self._parse(frame, utc_now_iso())  # `normalize`, inlined
        if type(parsed) is TradeEvent:  # most frames: `_handle`'s first case, inlined
            counters = self.counters
            counters.received += 1
            counters.last_trade = parsed
            # Nearly every trade is its product's next id: `_admit`'s first case, inlined.
            tracker = self._tracker_of.get(parsed.symbol)
            if tracker is not None:
                last = tracker.last
                if last is not None and parsed.trade_id == last + 1:
                    tracker.last = parsed.trade_id
                    return parsed
            return parsed if self._admit(parsed, backfill=False) else None
        return self._handle(parsed)

    def _handle(self, parsed: Parsed) -> TradeEvent | None:
        """Act on what a frame means; returns the trade to publish, if there is one. (Not a
        coroutine: one await a trade, on the emit, is all the hot path pays for.)"""
        if isinstance(parsed, TradeEvent):
            counters = self.counters
            counters.received += 1
            counters.last_trade = parsed
            return parsed if self._admit(parsed, backfill=False) else None
        if isinstance(parsed, Heartbeat):
            tracker = self.trackers.get(parsed.product)
            if tracker is not None and tracker.observe_latest(parsed.last_trade_id):
                self._gap_found(parsed.product)
        elif isinstance(parsed, Rejected):
            self.counters.rejected[parsed.reason] += 1
            log.warning(
                "malformed frame",
                extra={"exchange": self.name, "reason": parsed.reason, "frame": parsed.frame},
            )
        elif isinstance(parsed, Skipped):
            self.counters.skipped[parsed.reason] += 1
        elif isinstance(parsed, ServerShutdown):
            raise _Reconnect("server shutdown announced")
        elif isinstance(parsed, ExchangeErrorFrame):
            raise ExchangeProtocolError(f"exchange error: {parsed.message} ({parsed.reason})")
        elif isinstance(parsed, Control):
            pass  # acks and other channels carry nothing to publish
        return None

    async def _accept(self, trade: TradeEvent, *, backfill: bool) -> None:
        """Publish `trade` unless its id was already published; note gaps it reveals."""
        if self._admit(trade, backfill=backfill):
            assert self._emit is not None
            await self._emit(trade)

    def _admit(self, trade: TradeEvent, *, backfill: bool) -> bool:
        """True when `trade` is to be published (its id is new); counts and notes gaps."""
        product = self._products[trade.symbol]  # the exchange product: the tracker key
        tracker = self.trackers.get(product)
        if tracker is None:
            tracker = self.trackers[product] = TradeIdTracker()
        gaps_before = len(tracker.missing)
        if not tracker.accept(trade.trade_id):
            if backfill:
                self.counters.backfill_overlap += 1
            else:
                self.counters.duplicates += 1
            return False
        if backfill:
            self.counters.backfilled += 1
        elif len(tracker.missing) > gaps_before:
            self._gap_found(product)
        return True

    def _gap_found(self, product: str) -> None:
        self.counters.gaps_detected += 1
        log.info("trade-id gap", extra={"exchange": self.name, "product": product})
        self._backfill_wanted.set()

    async def _prime(self) -> None:
        """Before the first connection: learn each product's latest trade id from REST, so every
        trade after start-up is ours even if the connection drops before its first frame."""
        for product, tracker in self.trackers.items():
            if tracker.last is not None or self._stopping.is_set():
                continue
            try:
                latest = await self.latest_trade_id(product)
            except (aiohttp.ClientError, TimeoutError, BackfillError, ValueError) as exc:
                log.warning(
                    "no REST baseline; the first live trade starts the series",
                    extra={"exchange": self.name, "product": product, "error": str(exc)},
                )
                continue
            if latest is not None:
                tracker.observe_latest(latest)

    @abstractmethod
    async def latest_trade_id(self, product: str) -> int | None:
        """The id of the product's most recent trade, from REST (None: no trades yet)."""

    def _request_catch_up(self) -> None:
        """After a reconnect: trades that happened while disconnected must be fetched."""
        self._catch_up.update(p for p, t in self.trackers.items() if t.last is not None)
        self._backfill_wanted.set()

    async def _backfill_loop(self) -> None:
        rounds: dict[tuple[str, int, int], int] = {}
        while not self._stopping.is_set():
            await self._backfill_wanted.wait()
            self._backfill_wanted.clear()
            if self._stopping.is_set():
                return
            try:
                await self._backfill_round(rounds)
            except (aiohttp.ClientError, TimeoutError, BackfillError, ValueError) as exc:
                log.warning("backfill failed", extra={"exchange": self.name, "error": str(exc)})
            if any(t.missing for t in self.trackers.values()) or self._catch_up:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BACKFILL_RETRY_S):
                        await self._stopping.wait()
                self._backfill_wanted.set()

    async def _backfill_round(self, rounds: dict[tuple[str, int, int], int]) -> None:
        for product in sorted(self._catch_up):
            tracker = self.trackers[product]
            if tracker.last is not None:
                await self.fetch_range(product, tracker.last + 1, None)
            self._catch_up.discard(product)
        for product, tracker in self.trackers.items():
            for low, high in list(tracker.missing):
                if self._stopping.is_set():
                    return
                await self.fetch_range(product, low, high)
                key = (product, low, high)
                if (low, high) in tracker.missing:  # no progress on this exact range
                    rounds[key] = rounds.get(key, 0) + 1
                    if rounds[key] >= BACKFILL_MAX_ROUNDS:
                        lost = tracker.abandon(low, high)
                        self.counters.gap_ids_unrecoverable += lost
                        log.error(
                            "trade ids not served by REST; giving up",
                            extra={"exchange": self.name, "product": product, "ids": [low, high]},
                        )
                        del rounds[key]

    async def _get(
        self, path: str, params: dict[str, str], limiter: RateLimiter | None = None
    ) -> tuple[bytes, Any]:
        """GET a REST page, waiting out 429/418 `Retry-After` answers; returns body and headers."""
        assert self._http is not None
        while True:
            if limiter is not None:
                await asyncio.sleep(limiter.reserve())
            self.counters.rest_requests += 1
            async with self._http.get(self.rest_url + path, params=params) as response:
                body = await response.read()
                if response.status in (418, 429):
                    self.counters.rest_rate_limited += 1
                    retry_after = _retry_after_s(response.headers.get("Retry-After"))
                    log.warning(
                        "REST rate limited",
                        extra={
                            "exchange": self.name,
                            "status": response.status,
                            "wait_s": retry_after,
                        },
                    )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(retry_after):
                            await self._stopping.wait()
                    if self._stopping.is_set():
                        raise BackfillError("stopped while rate limited")
                    continue
                if response.status >= 400:
                    raise BackfillError(f"GET {path} {params} -> {response.status}: {body[:200]!r}")
                return body, response.headers


def _retry_after_s(header: str | None, default: float = 1.0) -> float:
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default


class BinanceConnector(BaseConnector):
    """Binance spot: combined trade streams; server pings are answered by the WebSocket layer;
    the connection is replaced before Binance's 24 h limit; outbound messages stay under 5/s."""

    exchange: Binance

    def __init__(self, settings: ProducerSettings, counters: ExchangeCounters, **kw: Any) -> None:
        super().__init__(
            Binance(settings.symbol_map()),
            settings,
            counters,
            ws_url=settings.binance_ws_url,
            rest_url=settings.binance_rest_url,
            **kw,
        )
        # 10 % under the limit: evenly spaced messages at exactly 5/s put 6 in a closed 1 s window.
        # Spaced from the moments they are sent, so a late one never crowds the next.
        self._outbound = Spacing(1 / (0.9 * Binance.max_outbound_msgs_per_s))
        self._weight_used = 0
        self._weight_minute = -1

    # Streams beyond this many go in SUBSCRIBE messages instead of the URL (URL length limits).
    url_streams_max = 100

    def rotate_after_s(self) -> float:
        return self.settings.binance_rotate_after_s

    async def connect(self) -> ClientConnection:
        products = self.exchange.products()
        in_url, rest = products[: self.url_streams_max], products[self.url_streams_max :]
        ws = await websockets.connect(
            self.ws_url + self.exchange.stream_path(in_url),
            open_timeout=self.settings.rest_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=2**22,
        )
        for index in range(0, len(rest), self.url_streams_max):
            chunk = rest[index : index + self.url_streams_max]
            await self.send(
                ws,
                {
                    "method": "SUBSCRIBE",
                    "params": [f"{p.lower()}@trade" for p in chunk],
                    "id": index,
                },
            )
        return ws

    async def send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        """Send a control message, paced under Binance's incoming-message limit."""
        await asyncio.sleep(self._outbound.wait())
        self._outbound.mark()  # nothing is awaited between this and the write
        await ws.send(orjson.dumps(message).decode())

    async def fetch_range(self, product: str, low: int, high: int | None) -> None:
        limit = Binance.rest_page_limit
        from_id = low
        while not self._stopping.is_set() and (high is None or from_id <= high):
            page_limit = limit if high is None else min(limit, high - from_id + 1)
            await self._respect_weight()
            body, headers = await self._get(
                Binance.trades_path, self.exchange.trades_params(product, from_id, page_limit)
            )
            self._note_weight(headers.get(Binance.weight_header))
            trades = self.exchange.parse_rest_trades(product, body, utc_now_iso())
            if not trades:
                return  # not served yet: the loop retries later
            if high is not None and trades[0].trade_id > from_id:
                # The exchange has no trades with these ids: nothing to wait for.
                tracker = self.trackers[product]
                self.counters.gap_ids_unrecoverable += tracker.abandon(
                    from_id, trades[0].trade_id - 1
                )
            for trade in trades:
                if high is not None and trade.trade_id > high:
                    break
                await self._accept(trade, backfill=True)
            from_id = trades[-1].trade_id + 1
            if high is None and len(trades) < page_limit:
                return  # caught up with the exchange

    async def latest_trade_id(self, product: str) -> int | None:
        await self._respect_weight()
        body, headers = await self._get(
            Binance.trades_path, self.exchange.latest_trade_params(product)
        )
        self._note_weight(headers.get(Binance.weight_header))
        trades = self.exchange.parse_rest_trades(product, body, utc_now_iso())
        return trades[-1].trade_id if trades else None

    async def _respect_weight(self) -> None:
        """Stay under the per-minute request-weight budget: wait for the next minute if the next
        call would cross 80 % of it."""
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        if self._weight_used + Binance.trades_weight > 0.8 * Binance.weight_limit_1m:
            wait = 60 - time.time() % 60
            log.info("REST weight budget reached", extra={"exchange": self.name, "wait_s": wait})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._stopping.wait()

    def _note_weight(self, header: str | None) -> None:
        if header is not None and header.isdigit():
            self._weight_used = int(header)


class CoinbaseConnector(BaseConnector):
    """Coinbase Exchange: subscribe to `matches` + `heartbeat` within the deadline; an `error`
    frame ends the connection; heartbeats' `last_trade_id` reveal missed matches."""

    exchange: Coinbase

    def __init__(self, settings: ProducerSettings, counters: ExchangeCounters, **kw: Any) -> None:
        super().__init__(
            Coinbase(settings.symbol_map()),
            settings,
            counters,
            ws_url=settings.coinbase_ws_url,
            rest_url=settings.coinbase_rest_url,
            **kw,
        )
        self._rest_limiter = RateLimiter(Coinbase.rest_requests_per_s, burst=1.0)

    async def connect(self) -> ClientConnection:
        ws = await websockets.connect(
            self.ws_url,
            open_timeout=self.settings.rest_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=2**22,
        )
        try:
            async with asyncio.timeout(self.settings.coinbase_subscribe_timeout_s):
                await ws.send(self.exchange.subscribe_message().decode())
                while True:  # the ack confirms the subscription (or an error refuses it)
                    parsed = self.normalize(await ws.recv())
                    if isinstance(parsed, Control) and parsed.kind == "subscriptions":
                        return ws
                    if isinstance(parsed, ExchangeErrorFrame):
                        raise ExchangeProtocolError(
                            f"subscribe refused: {parsed.message} ({parsed.reason})"
                        )
                    trade = self._handle(parsed)
                    if trade is not None:
                        assert self._emit is not None
                        await self._emit(trade)
        except BaseException:
            await ws.close()
            raise

    async def latest_trade_id(self, product: str) -> int | None:
        body, _ = await self._get(
            self.exchange.trades_path(product), {"limit": "1"}, self._rest_limiter
        )
        trades = self.exchange.parse_rest_trades(product, body, utc_now_iso())
        return trades[-1].trade_id if trades else None

    async def fetch_range(self, product: str, low: int, high: int | None) -> None:
        if high is None:
            return  # the feed's last_match and heartbeats bound every Coinbase gap
        before_id = high + 1  # pages hold ids < before_id, newest first
        while not self._stopping.is_set() and before_id > low:
            limit = min(Coinbase.rest_page_limit, before_id - low)
            body, _ = await self._get(
                self.exchange.trades_path(product),
                self.exchange.trades_params(before_id, limit),
                self._rest_limiter,
            )
            trades = self.exchange.parse_rest_trades(product, body, utc_now_iso())
            in_range = [t for t in trades if low <= t.trade_id <= high]
            for trade in in_range:
                await self._accept(trade, backfill=True)
            if not trades:
                return
            oldest = trades[0].trade_id
            if oldest >= before_id:
                raise BackfillError(f"REST paging did not advance below {before_id}")
            before_id = oldest
