"""Plumbing shared by the two simulated exchanges: connections, the trade log, fault delivery.

An `ExchangeServer` receives every trade of its exchange from the simulator (`publish`, called
synchronously on the event loop), keeps the full log for REST, and hands each trade to the
WebSocket connections subscribed to it, applying the scenario's delivery faults. Each connection
has a bounded outbox drained by its own writer task, so a slow client never blocks the market and
frames reach a connection in exactly the order they were published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from aiohttp import WSMsgType, web

from devstack.simulator.market import (
    DropConnections,
    Fault,
    GoSilent,
    Malformed,
    Rest429,
    ServerShutdown,
    SkipTradeIds,
    Trade,
    fault_applies,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Real (wall) seconds, monotonic; injectable so tests control time."""
Job = Coroutine[Any, Any, None]


class MarketClock(Protocol):
    """What an exchange needs from the simulator that owns it."""

    def catch_up(self) -> None:
        """Generate and publish every trade that has happened by now."""

    def sim_time_us(self) -> int:
        """The simulated exchange time now, microseconds since the epoch."""


@dataclass
class ConnectionStats:
    """One WebSocket connection's history (a snapshot copy is handed out)."""

    conn_id: int
    exchange: str
    path: str
    opened_at_s: float
    closed_at_s: float | None = None
    close_reason: str | None = None
    messages_received: int = 0  # text/binary messages from the client (not ping/pong)
    pings_sent: int = 0
    pongs_received: int = 0
    frames_sent: int = 0
    trades_sent: int = 0
    subscriptions: tuple[str, ...] = ()


@dataclass
class ExchangeCounters:
    """Per-exchange counters (a snapshot copy is handed out)."""

    connections_accepted: int = 0
    connections_open: int = 0
    trades_published: int = 0
    drops: int = 0  # abrupt closes by DropConnections
    pings_sent: int = 0
    pongs_received: int = 0
    rest_requests: int = 0
    rest_429s: int = 0
    malformed_frames_sent: int = 0
    trades_skipped: int = 0  # SkipTradeIds
    trades_silenced: int = 0  # not sent during GoSilent
    silences: int = 0
    shutdowns: int = 0  # ServerShutdown
    protocol_closes: dict[str, int] = field(default_factory=dict)  # reason -> count


# Outbox items.
@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    message: str
    abrupt: bool


_Item = _Text | _Ping | _Pong | _Close


class Connection:
    """An accepted WebSocket: an outbox, the writer that drains it, and its stats."""

    def __init__(
        self,
        *,
        stats: ConnectionStats,
        ws: web.WebSocketResponse,
        request: web.Request,
        outbox_size: int,
        on_close: Callable[[Connection, str], None],
    ) -> None:
        self.stats = stats
        self.ws = ws
        self.topics: dict[str, None] = {}  # ordered set, exchange-specific names
        self.wrapped = False  # payloads wrapped in an envelope (Binance combined streams)
        self.pong_received = asyncio.Event()
        self._request = request
        self._outbox: asyncio.Queue[_Item] = asyncio.Queue(maxsize=outbox_size)
        self.sending_close = False  # the writer is in a close handshake
        self._on_close = on_close
        self._closing = False

    @property
    def closing(self) -> bool:
        return self._closing

    def send_text(self, text: str, *, is_trade: bool = False) -> None:
        if self._put(_Text(text)) and is_trade:
            self.stats.trades_sent += 1

    def send_ping(self, payload: bytes) -> None:
        self._put(_Ping(payload))

    def send_pong(self, payload: bytes) -> None:
        self._put(_Pong(payload))

    def close(self, reason: str, *, code: int = 1000, message: str = "") -> None:
        """Close with a close frame once the frames already queued are sent."""
        self._put(_Close(code, message, abrupt=False))
        self._mark_closing(reason)

    def drop(self, reason: str) -> None:
        """Close the TCP connection without a close frame once the queued frames are sent."""
        self._put(_Close(1006, "", abrupt=True))
        self._mark_closing(reason)

    def abort(self, reason: str) -> None:
        """Reset the TCP connection now (the peer is dead or too slow): no close frame."""
        self._mark_closing(reason)
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    def _mark_closing(self, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self._on_close(self, reason)

    def _put(self, item: _Item) -> bool:
        if self._closing:
            return False
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            # Exchanges disconnect consumers that cannot keep up.
            self.abort("slow_consumer")
            return False
        return True

    async def run_writer(self) -> None:
        """Send the outbox in order until a close item or a send error."""
        ws = self.ws
        while True:
            item = await self._outbox.get()
            try:
                match item:
                    case _Text(text=text):
                        await ws.send_str(text)
                        self.stats.frames_sent += 1
                    case _Ping(payload=payload):
                        await ws.ping(payload)
                        self.stats.pings_sent += 1
                    case _Pong(payload=payload):
                        await ws.pong(payload)
                    case _Close(abrupt=True):
                        transport = self._request.transport
                        if transport is not None:
                            transport.close()  # flushes what is written, sends no close frame
                        return
                    case _Close(code=code, message=message):
                        self.sending_close = True
                        await ws.close(code=code, message=message.encode())
                        return
            except (ConnectionError, RuntimeError) as exc:
                log.debug("connection %s: send failed: %s", self.stats.conn_id, exc)
                return


class ExchangeServer(ABC):
    """One simulated exchange: an aiohttp app, its connections, its trade log and faults."""

    NAME: ClassVar[str]
    CLOSE_TIMEOUT_S: ClassVar[float] = 2.0

    def __init__(
        self,
        *,
        market: MarketClock,
        products: Sequence[str],
        first_trade_ids: Mapping[str, int],
        faults: Sequence[Fault],
        clock: Clock,
        outbox_size: int,
    ) -> None:
        self._market = market
        self._clock = clock
        self._outbox_size = outbox_size
        self.products: tuple[str, ...] = tuple(products)
        self._first_ids = dict(first_trade_ids)
        self._log: dict[str, list[Trade]] = {p: [] for p in self.products}
        self._connections: dict[int, Connection] = {}
        self._history: list[ConnectionStats] = []
        self.counters = ExchangeCounters()
        self._next_conn_id = 1
        mine = [f for f in faults if fault_applies(f, self.NAME)]
        drops = [f.every_n_trades for f in mine if isinstance(f, DropConnections)]
        self._drop_every = min(drops) if drops else None
        self._skips = [f for f in mine if isinstance(f, SkipTradeIds)]
        self._pending_malformed = sorted(f.at_trade for f in mine if isinstance(f, Malformed))
        self._pending_silences = sorted(
            ((f.at_trade, f.duration_s) for f in mine if isinstance(f, GoSilent)),
        )
        self._pending_shutdowns = sorted(f.at_trade for f in mine if isinstance(f, ServerShutdown))
        self._forced_429 = {f.at_request_n: f.retry_after_s for f in mine if isinstance(f, Rest429)}
        self._silent_until_s = -1.0
        self._tasks: list[asyncio.Task[None]] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    def app(self) -> web.Application:
        """The aiohttp application serving this exchange's WebSocket and REST endpoints."""

    def _background_jobs(self) -> list[Job]:
        """Coroutines that run while the exchange is up (Coinbase: heartbeats)."""
        return []

    async def start(self) -> None:
        """Start the background jobs; called once the server listens."""
        for job in self._background_jobs():
            self._tasks.append(asyncio.create_task(job, name=f"{self.NAME}-background"))

    async def stop(self) -> None:
        """Cancel background tasks and close every connection with a close frame."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for conn in list(self._connections.values()):
            conn.close("server_stopped", code=1001, message="simulator stopping")

    # ---- connections -------------------------------------------------------------------------

    async def serve_connection(
        self,
        request: web.Request,
        reader: Callable[[Connection], Job],
    ) -> web.WebSocketResponse:
        """Accept a WebSocket, run `reader(conn)` (the exchange's receive loop) until the
        connection ends, with the writer (and the exchange's helpers) alongside."""
        ws = web.WebSocketResponse(
            autoping=False, compress=False, timeout=self.CLOSE_TIMEOUT_S, max_msg_size=1 << 20
        )
        await ws.prepare(request)
        conn_id = self._next_conn_id
        self._next_conn_id += 1
        stats = ConnectionStats(
            conn_id=conn_id, exchange=self.NAME, path=request.path_qs, opened_at_s=self._clock()
        )
        conn = Connection(
            stats=stats,
            ws=ws,
            request=request,
            outbox_size=self._outbox_size,
            on_close=self._record_close,
        )
        self._connections[conn_id] = conn
        self._history.append(stats)
        self.counters.connections_accepted += 1
        self.counters.connections_open += 1
        tasks = [asyncio.create_task(conn.run_writer(), name=f"{self.NAME}-writer-{conn_id}")]
        tasks += [
            asyncio.create_task(job, name=f"{self.NAME}-conn-{conn_id}")
            for job in self._connection_jobs(conn)
        ]
        try:
            await reader(conn)
        finally:
            self._connections.pop(conn_id, None)
            stats.subscriptions = tuple(conn.topics)
            self.counters.connections_open -= 1
            if stats.close_reason is None:
                stats.close_reason = "client"
            stats.closed_at_s = self._clock()
            # The socket is closing or closed: nothing queued can be sent any more. Only a close
            # handshake the writer started is worth finishing.
            if conn.sending_close:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(tasks[0]), self.CLOSE_TIMEOUT_S)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    def _connection_jobs(self, conn: Connection) -> list[Job]:
        """Coroutines to run alongside a connection (Binance: pings, age limit)."""
        return []

    def _record_close(self, conn: Connection, reason: str) -> None:
        if conn.stats.close_reason is None:
            conn.stats.close_reason = reason
            self.counters.protocol_closes[reason] = self.counters.protocol_closes.get(reason, 0) + 1

    def handle_control(self, conn: Connection, msg_type: WSMsgType, data: bytes) -> bool:
        """Answer ping/pong frames; True when `msg_type` was a control frame."""
        if msg_type is WSMsgType.PING:
            conn.send_pong(data)
            return True
        if msg_type is WSMsgType.PONG:
            conn.stats.pongs_received += 1
            self.counters.pongs_received += 1
            conn.pong_received.set()
            return True
        return False

    @property
    def silent(self) -> bool:
        """Inside a GoSilent fault: no frames at all."""
        return self._clock() < self._silent_until_s

    # ---- trades ------------------------------------------------------------------------------

    def publish(self, trade: Trade) -> None:
        """Log one trade that just happened and deliver it to subscribed connections."""
        self._log[trade.product].append(trade)
        self.counters.trades_published += 1
        number = self.counters.trades_published
        recipients = [
            c for c in self._connections.values() if not c.closing and self._subscribed(c, trade)
        ]
        if recipients and self._pending_shutdowns and self._pending_shutdowns[0] <= number:
            self._pending_shutdowns.pop(0)
            self.counters.shutdowns += 1
            self._shutdown_connections()
            return
        if recipients and self._pending_silences and self._pending_silences[0][0] <= number:
            _, duration_s = self._pending_silences.pop(0)
            self._silent_until_s = self._clock() + duration_s
            self.counters.silences += 1
        if self.silent:
            self.counters.trades_silenced += 1
            return
        if any(s.at_trade <= number < s.at_trade + s.count for s in self._skips):
            self.counters.trades_skipped += 1
            return
        malformed = bool(
            recipients and self._pending_malformed and self._pending_malformed[0] <= number
        )
        if malformed:
            self._pending_malformed.pop(0)
        frames: dict[bool, str] = {}
        for conn in recipients:
            if malformed:
                for text in self._malformed_frames(trade, conn.wrapped):
                    conn.send_text(text)
                    self.counters.malformed_frames_sent += 1
            if conn.wrapped not in frames:
                frames[conn.wrapped] = self._trade_frame(trade, conn.wrapped)
            conn.send_text(frames[conn.wrapped], is_trade=True)
            if self._drop_every is not None and conn.stats.trades_sent % self._drop_every == 0:
                self.counters.drops += 1
                conn.drop("drop_fault")

    def _shutdown_connections(self) -> None:
        """ServerShutdown: exchange-specific goodbye (Binance overrides)."""
        for conn in list(self._connections.values()):
            conn.close("server_shutdown", code=1001)

    @abstractmethod
    def _subscribed(self, conn: Connection, trade: Trade) -> bool:
        """Whether `conn` asked for `trade`'s product."""

    @abstractmethod
    def _trade_frame(self, trade: Trade, wrapped: bool) -> str:
        """The WebSocket frame text for `trade`."""

    @abstractmethod
    def _malformed_frames(self, trade: Trade, wrapped: bool) -> list[str]:
        """The Malformed fault's frames: a truncated JSON text, then an object missing fields."""

    # ---- trade log (REST) --------------------------------------------------------------------

    def trades(self, product: str) -> list[Trade]:
        """The product's trades so far, in id order (the live list; do not mutate)."""
        return self._log[product]

    def first_trade_id(self, product: str) -> int:
        return self._first_ids[product]

    def last_trade_id(self, product: str) -> int:
        """Id of the last trade that happened (first id - 1 before the first trade)."""
        trades = self._log[product]
        return trades[-1].trade_id if trades else self._first_ids[product] - 1

    def trade_slice(self, product: str, first_id: int, last_id: int) -> list[Trade]:
        """Trades with first_id <= trade_id <= last_id, ascending (ids are consecutive)."""
        trades = self._log[product]
        base = self._first_ids[product]
        start = max(0, first_id - base)
        stop = max(start, min(len(trades), last_id - base + 1))
        return trades[start:stop]

    def count_rest_request(self) -> float | None:
        """Count a REST request; the Retry-After seconds when the Rest429 fault forces a 429."""
        self.counters.rest_requests += 1
        return self._forced_429.get(self.counters.rest_requests)

    # ---- snapshots ---------------------------------------------------------------------------

    def counters_snapshot(self) -> ExchangeCounters:
        return replace(self.counters, protocol_closes=dict(self.counters.protocol_closes))

    def connections_snapshot(self) -> list[ConnectionStats]:
        out = []
        for stats in self._history:
            conn = self._connections.get(stats.conn_id)
            topics = tuple(conn.topics) if conn is not None else stats.subscriptions
            out.append(replace(stats, subscriptions=topics))
        return out
