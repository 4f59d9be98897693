"""Simulated Coinbase Exchange: the `matches` + `heartbeat` WebSocket feed and REST trades.

WebSocket at `/` (like `wss://ws-feed.exchange.coinbase.com`): the client sends
`{"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches","heartbeat"]}` (a channel
may also be `{"name":"matches","product_ids":[..]}`) within `subscribe_timeout_s`, otherwise it
gets an `error` and the connection is closed. An invalid subscription gets
`{"type":"error","message":"Failed to subscribe","reason":"FOO-BAR is not a valid product"}` and is
ignored (the connection stays open). A valid one gets
`{"type":"subscriptions","channels":[{"name":"matches","product_ids":[..]},..]}`, then one
`last_match` per product (its most recent trade), then a `match` per trade:
`{"type":"match","trade_id":123,"maker_order_id":"<uuid>","taker_order_id":"<uuid>",
"side":"sell","size":"0.01","price":"60000.12","product_id":"BTC-USD","sequence":4567,
"time":"2026-01-01T00:00:00.123456Z"}` where `side` is the MAKER's side (taker bought when it
says sell), `trade_id` is per product and consecutive, and `sequence` increases but is NOT
consecutive. Every `heartbeat_interval_s` real seconds, per subscribed product:
`{"type":"heartbeat","sequence":..,"last_trade_id":..,"product_id":"BTC-USD","time":".."}` with the
id of the last trade that happened on the product, delivered or not.
REST: `GET /products/{product_id}/trades?limit=&after=&before=` (newest first, cursor headers
`CB-BEFORE`/`CB-AFTER`), `GET /time`; HTTP 429 over `rest_requests_per_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import orjson
from aiohttp import WSMsgType, web

from devstack.simulator.feed import Clock, Connection, ExchangeServer, Job, MarketClock
from devstack.simulator.market import Fault, Trade, iso_timestamp


@dataclass(frozen=True)
class CoinbaseConfig:
    """Coinbase's limits; the defaults are the real ones."""

    subscribe_timeout_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    rest_requests_per_s: int = 10
    outbox_size: int = 100_000


# ---- pure frame and payload builders ----------------------------------------------------------


def _digest(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def order_id(product: str, trade_id: int, role: str) -> str:
    """A deterministic UUID4-shaped order id for the trade's maker or taker."""
    return str(uuid.UUID(bytes=_digest(f"{product}:{trade_id}:{role}", 16), version=4))


def match_sequence(product: str, trade_id: int) -> int:
    """The feed sequence of the product's trade: increasing with trade_id, never consecutive
    (the full channel's other messages take the numbers in between)."""
    offset = int.from_bytes(_digest(product, 4), "big") % 1_000_000_000
    jitter = _digest(f"{product}:{trade_id}", 1)[0] % 7
    return offset + trade_id * 8 + jitter


def heartbeat_sequence(product: str, last_trade_id: int) -> int:
    """After the last match's sequence, before the next one's."""
    return match_sequence(product, last_trade_id) + 1


def match_message(trade: Trade, *, last: bool = False) -> dict[str, Any]:
    """A `match` (or `last_match`) message; field order as on the real feed."""
    return {
        "type": "last_match" if last else "match",
        "trade_id": trade.trade_id,
        "maker_order_id": order_id(trade.product, trade.trade_id, "maker"),
        "taker_order_id": order_id(trade.product, trade.trade_id, "taker"),
        "side": trade.maker_side,
        "size": trade.size,
        "price": trade.price,
        "product_id": trade.product,
        "sequence": match_sequence(trade.product, trade.trade_id),
        "time": trade.timestamp,
    }


def heartbeat_message(product: str, last_trade_id: int, time_us: int) -> dict[str, Any]:
    return {
        "type": "heartbeat",
        "sequence": heartbeat_sequence(product, last_trade_id),
        "last_trade_id": last_trade_id,
        "product_id": product,
        "time": iso_timestamp(time_us, precision="us"),
    }


def rest_trade(trade: Trade) -> dict[str, Any]:
    """One element of `GET /products/{id}/trades` (REST prints decimals with 8 places)."""
    return {
        "time": trade.timestamp,
        "trade_id": trade.trade_id,
        "price": f"{Decimal(trade.price):.8f}",
        "size": f"{Decimal(trade.size):.8f}",
        "side": trade.maker_side,
    }


def error_message(reason: str, message: str = "Failed to subscribe") -> dict[str, Any]:
    return {"type": "error", "message": message, "reason": reason}


class RequestWindow:
    """At most `limit` requests in any `window_s` real seconds (sliding). Pure: the caller passes
    the time."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def _expire(self, now_s: float) -> None:
        while self._times and self._times[0] <= now_s - self.window_s:
            self._times.popleft()

    def try_take(self, now_s: float) -> bool:
        self._expire(now_s)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now_s)
        return True

    def retry_after_s(self, now_s: float) -> int:
        self._expire(now_s)
        if not self._times:
            return 1
        return max(1, math.ceil(self._times[0] + self.window_s - now_s))


class _BadSubscriptionError(Exception):
    pass


class CoinbaseServer(ExchangeServer):
    """Coinbase Exchange, WebSocket feed and REST trades on one local port."""

    NAME = "coinbase"
    WS_PATH: ClassVar[str] = "/"
    TRADES_PATH: ClassVar[str] = "/products/{product_id}/trades"
    TIME_PATH: ClassVar[str] = "/time"
    MATCHES: ClassVar[str] = "matches"
    HEARTBEAT: ClassVar[str] = "heartbeat"
    CHANNELS: ClassVar[tuple[str, ...]] = (MATCHES, HEARTBEAT)
    CURSOR_BEFORE_HEADER: ClassVar[str] = "CB-BEFORE"
    CURSOR_AFTER_HEADER: ClassVar[str] = "CB-AFTER"
    DEFAULT_LIMIT: ClassVar[int] = 100
    MAX_LIMIT: ClassVar[int] = 1000

    def __init__(
        self,
        *,
        market: MarketClock,
        products: Sequence[str],
        first_trade_ids: Mapping[str, int],
        faults: Sequence[Fault],
        clock: Clock,
        config: CoinbaseConfig,
    ) -> None:
        super().__init__(
            market=market,
            products=products,
            first_trade_ids=first_trade_ids,
            faults=faults,
            clock=clock,
            outbox_size=config.outbox_size,
        )
        self.config = config
        self._requests = RequestWindow(config.rest_requests_per_s)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.WS_PATH, self._feed)
        app.router.add_get(self.TRADES_PATH, self._trades)
        app.router.add_get(self.TIME_PATH, self._time)
        return app

    def _background_jobs(self) -> list[Job]:
        return [self._heartbeats()]

    # ---- WebSocket -------------------------------------------------------------------------

    async def _feed(self, request: web.Request) -> web.WebSocketResponse:
        return await self.serve_connection(request, self._read)

    def _subscribed(self, conn: Connection, trade: Trade) -> bool:
        return f"{self.MATCHES}:{trade.product}" in conn.topics

    def _trade_frame(self, trade: Trade, wrapped: bool) -> str:
        return orjson.dumps(match_message(trade)).decode()

    def _malformed_frames(self, trade: Trade, wrapped: bool) -> list[str]:
        full = self._trade_frame(trade, wrapped)
        partial = {"type": "match", "trade_id": trade.trade_id, "product_id": trade.product}
        return [full[: len(full) // 2], orjson.dumps(partial).decode()]

    def _send(self, conn: Connection, message: Mapping[str, Any]) -> None:
        conn.send_text(orjson.dumps(message).decode())

    async def _read(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = loop.time() + self.config.subscribe_timeout_s
        while True:
            timeout = None if deadline is None else deadline - loop.time()
            try:
                if timeout is not None and timeout <= 0:
                    raise TimeoutError
                msg = await conn.ws.receive(timeout=timeout)
            except TimeoutError:
                reason = (
                    "You must send a subscribe message within "
                    f"{self.config.subscribe_timeout_s:g} seconds of connecting"
                )
                self._send(conn, error_message(reason))
                conn.close("subscribe_timeout", code=1008, message="subscribe timeout")
                deadline = None
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if self.handle_control(conn, msg.type, msg.data):
                continue
            conn.stats.messages_received += 1
            if msg.type is not WSMsgType.TEXT:
                self._send(conn, error_message("binary frames are not supported", "Malformed JSON"))
                continue
            if self._handle_request(conn, msg.data) and deadline is not None:
                deadline = None

    def _handle_request(self, conn: Connection, text: str) -> bool:
        """Apply a subscribe/unsubscribe; True when it was a valid subscribe."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._send(conn, error_message(str(exc), "Malformed JSON"))
            return False
        kind = request.get("type") if isinstance(request, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            self._send(conn, error_message(f"Invalid message type {kind!r}", "Failed to subscribe"))
            return False
        assert isinstance(request, dict)
        verb = "subscribe" if kind == "subscribe" else "unsubscribe"
        try:
            topics = self._requested_topics(request)
        except _BadSubscriptionError as exc:
            self._send(conn, error_message(str(exc), f"Failed to {verb}"))
            return False
        self._market.catch_up()  # so last_match is the latest trade
        if kind == "unsubscribe":
            for topic in topics:
                conn.topics.pop(topic, None)
            self._send(conn, self._subscriptions(conn))
            return False
        new = [t for t in topics if t not in conn.topics]
        conn.topics.update(dict.fromkeys(topics))
        self._send(conn, self._subscriptions(conn))
        for topic in new:
            channel, _, product = topic.partition(":")
            trades = self.trades(product)
            if channel == self.MATCHES and trades:
                self._send(conn, match_message(trades[-1], last=True))
        return True

    def _requested_topics(self, request: Mapping[str, Any]) -> list[str]:
        """`channel:product` topics of a (un)subscribe request; _BadSubscriptionError if invalid."""
        default_products = request.get("product_ids") or []
        channels = request.get("channels") or []
        if not isinstance(channels, list) or not channels:
            raise _BadSubscriptionError("No channels provided")
        topics: list[str] = []
        for channel in channels:
            name: Any
            if isinstance(channel, str):
                name, products = channel, default_products
            elif isinstance(channel, dict):
                name = channel.get("name")
                products = channel.get("product_ids") or default_products
            else:
                raise _BadSubscriptionError(f"{channel!r} is not a valid channel")
            if name not in self.CHANNELS:
                raise _BadSubscriptionError(f"{name} is not a valid channel")
            if not isinstance(products, list) or not products:
                raise _BadSubscriptionError(
                    f"You need to specify at least one product ID for channel {name}"
                )
            for product in products:
                if product not in self._log:
                    raise _BadSubscriptionError(f"{product} is not a valid product")
                topics.append(f"{name}:{product}")
        return topics

    def _subscriptions(self, conn: Connection) -> dict[str, Any]:
        by_channel: dict[str, list[str]] = {}
        for topic in conn.topics:
            channel, _, product = topic.partition(":")
            by_channel.setdefault(channel, []).append(product)
        return {
            "type": "subscriptions",
            "channels": [{"name": c, "product_ids": p} for c, p in by_channel.items()],
        }

    async def _heartbeats(self) -> None:
        """Every `heartbeat_interval_s`, one heartbeat per product per subscribed connection."""
        prefix = f"{self.HEARTBEAT}:"
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            self._market.catch_up()
            if self.silent:
                continue
            now_us = self._market.sim_time_us()
            for conn in list(self._connections.values()):
                for topic in conn.topics:
                    if topic.startswith(prefix):
                        product = topic[len(prefix) :]
                        message = heartbeat_message(product, self.last_trade_id(product), now_us)
                        self._send(conn, message)

    # ---- REST ------------------------------------------------------------------------------

    @staticmethod
    def _json(
        body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            body=orjson.dumps(body),
            status=status,
            headers=dict(headers or {}),
            content_type="application/json",
        )

    def _admit(self) -> web.Response | None:
        forced = self.count_rest_request()
        now = self._clock()
        retry_after: float | None = forced
        if retry_after is None and not self._requests.try_take(now):
            retry_after = self._requests.retry_after_s(now)
        if retry_after is None:
            return None
        self.counters.rest_429s += 1
        return self._json(
            {"message": "Public rate limit exceeded"},
            429,
            {"Retry-After": str(math.ceil(retry_after))},
        )

    async def _trades(self, request: web.Request) -> web.Response:
        """Newest first. `after=X`: the page of trades older than X (trade_id < X);
        `before=Y`: the page of trades newer than Y (trade_id > Y, the ones right after Y).
        `CB-BEFORE` = newest trade_id of the page, `CB-AFTER` = oldest."""
        refused = self._admit()
        if refused is not None:
            return refused
        product = request.match_info["product_id"]
        if product not in self._log:
            return self._json({"message": "NotFound"}, 404)
        params: dict[str, int | None] = {}
        for name in ("limit", "after", "before"):
            value = request.query.get(name)
            if value is None or value == "":
                params[name] = None
            elif value.isdigit():
                params[name] = int(value)
            else:
                return self._json({"message": f"Invalid {name}"}, 400)
        self._market.catch_up()
        limit = max(1, min(params["limit"] or self.DEFAULT_LIMIT, self.MAX_LIMIT))
        after, before = params["after"], params["before"]
        newest = self.last_trade_id(product)
        if before is not None:
            high = newest if after is None else min(newest, after - 1)
            page = self.trade_slice(product, before + 1, min(high, before + limit))
        else:
            high = newest if after is None else min(newest, after - 1)
            page = self.trade_slice(product, high - limit + 1, high)
        page = page[::-1]
        headers: dict[str, str] = {}
        if page:
            headers[self.CURSOR_BEFORE_HEADER] = str(page[0].trade_id)
            headers[self.CURSOR_AFTER_HEADER] = str(page[-1].trade_id)
        return self._json([rest_trade(t) for t in page], 200, headers)

    async def _time(self, request: web.Request) -> web.Response:
        refused = self._admit()
        if refused is not None:
            return refused
        now_us = self._market.sim_time_us()
        return self._json(
            {"iso": iso_timestamp(now_us, precision="us"), "epoch": now_us / 1_000_000}
        )
