"""Simulated Binance spot: the `<symbol>@trade` WebSocket streams and the trades REST endpoints.

WebSocket (`BinanceServer.COMBINED_PATH` / `RAW_PATH`):
- `GET /stream?streams=btcusdt@trade/ethusdt@trade` (combined) sends
  `{"stream":"btcusdt@trade","data":<payload>}`; `GET /ws/btcusdt@trade` sends the bare payload.
  The payload of a trade is
  `{"e":"trade","E":1767225600123,"s":"BTCUSDT","t":1234567,"p":"60000.12000000",
  "q":"0.01000000","T":1767225600122,"m":true,"M":true}`:
  e event type, E event time (ms), s symbol, t trade id (per symbol, consecutive), p price,
  q quantity, T trade time (ms), m buyer is the maker (true: the taker SOLD), M best match
  (always true). Streams that do not exist just send nothing, as on Binance.
- The server pings every `ping_interval_s` and drops a connection whose PONG does not arrive
  within `pong_timeout_s`; it closes connections after `max_connection_s`; JSON requests
  (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`) are answered
  `{"result":..,"id":..}`; more than `max_incoming_msgs_per_s` client messages in one second
  (ping/pong frames not counted) closes the connection.
REST: `GET /api/v3/historicalTrades`, `/api/v3/trades`, `/api/v3/ping`, `/api/v3/time`, with
request weight accounting (`X-MBX-USED-WEIGHT-1M`) and HTTP 429 + `Retry-After` over the budget.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import orjson
from aiohttp import WSMsgType, web

from devstack.simulator.feed import Clock, Connection, ExchangeServer, Job, MarketClock
from devstack.simulator.market import Fault, Trade


@dataclass(frozen=True)
class BinanceConfig:
    """Binance's limits; the defaults are the real ones."""

    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_connection_s: float = 24 * 3600.0
    max_incoming_msgs_per_s: int = 5
    rest_weight_limit_1m: int = 6000
    weight_window_s: float = 60.0
    outbox_size: int = 100_000


# ---- pure frame and payload builders ----------------------------------------------------------


def stream_name(product: str) -> str:
    """`BTCUSDT` -> `btcusdt@trade` (stream names are lower case)."""
    return f"{product.lower()}@trade"


def event_time_ms(trade: Trade) -> int:
    """Binance's `E`: the trade time plus a small, deterministic dispatch delay."""
    return trade.time_ms + 1 + trade.trade_id % 3


def trade_payload(trade: Trade) -> dict[str, Any]:
    """The `@trade` payload (current format: exactly e,E,s,t,p,q,T,m,M, in that order)."""
    return {
        "e": "trade",
        "E": event_time_ms(trade),
        "s": trade.product,
        "t": trade.trade_id,
        "p": trade.price,
        "q": trade.size,
        "T": trade.time_ms,
        "m": trade.side == "sell",  # buyer is maker <=> the taker sold
        "M": True,
    }


def trade_frame(trade: Trade, *, combined: bool) -> str:
    payload = trade_payload(trade)
    body = {"stream": stream_name(trade.product), "data": payload} if combined else payload
    return orjson.dumps(body).decode()


def historical_trade(trade: Trade) -> dict[str, Any]:
    """One element of `GET /api/v3/historicalTrades` / `/api/v3/trades`."""
    quote_qty = Decimal(trade.price) * Decimal(trade.size)
    return {
        "id": trade.trade_id,
        "price": trade.price,
        "qty": trade.size,
        "quoteQty": f"{quote_qty:.8f}",
        "time": trade.time_ms,
        "isBuyerMaker": trade.side == "sell",
        "isBestMatch": True,
    }


def server_shutdown_event(event_time_ms: int) -> str:
    return orjson.dumps({"e": "serverShutdown", "E": event_time_ms}).decode()


class WeightWindow:
    """Request weight used per fixed window of `window_s` real seconds (Binance's 1-minute
    `REQUEST_WEIGHT` limit). Pure: the caller passes the time."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._window = -1
        self._used = 0

    def _roll(self, now_s: float) -> None:
        window = math.floor(now_s / self.window_s)
        if window != self._window:
            self._window, self._used = window, 0

    def used(self, now_s: float) -> int:
        self._roll(now_s)
        return self._used

    def try_spend(self, now_s: float, weight: int) -> bool:
        """Spend `weight` if the budget allows it; False (nothing spent) when over."""
        self._roll(now_s)
        if self._used + weight > self.limit:
            return False
        self._used += weight
        return True

    def retry_after_s(self, now_s: float) -> int:
        """Whole seconds until the current window ends."""
        self._roll(now_s)
        return max(1, math.ceil((self._window + 1) * self.window_s - now_s))


_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_INT_RE = re.compile(r"^[0-9]{1,20}$")


class _BadRequestError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class BinanceServer(ExchangeServer):
    """Binance spot, WebSocket market streams and trades REST on one local port."""

    NAME = "binance"
    COMBINED_PATH: ClassVar[str] = "/stream"
    RAW_PATH: ClassVar[str] = "/ws"
    HISTORICAL_TRADES_PATH: ClassVar[str] = "/api/v3/historicalTrades"
    RECENT_TRADES_PATH: ClassVar[str] = "/api/v3/trades"
    PING_PATH: ClassVar[str] = "/api/v3/ping"
    TIME_PATH: ClassVar[str] = "/api/v3/time"
    USED_WEIGHT_HEADER: ClassVar[str] = "X-MBX-USED-WEIGHT-1M"
    TRADES_WEIGHT: ClassVar[int] = 25
    PING_WEIGHT: ClassVar[int] = 1
    DEFAULT_LIMIT: ClassVar[int] = 500
    MAX_LIMIT: ClassVar[int] = 1000
    TOO_MANY_REQUESTS_CODE: ClassVar[int] = -1003
    INVALID_SYMBOL_CODE: ClassVar[int] = -1121
    WS_METHODS: ClassVar[tuple[str, ...]] = (
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST_SUBSCRIPTIONS",
        "SET_PROPERTY",
        "GET_PROPERTY",
    )

    def __init__(
        self,
        *,
        market: MarketClock,
        products: Sequence[str],
        first_trade_ids: Mapping[str, int],
        faults: Sequence[Fault],
        clock: Clock,
        config: BinanceConfig,
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
        self._weights = WeightWindow(config.rest_weight_limit_1m, config.weight_window_s)
        self._streams = {stream_name(p): p for p in self.products}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.COMBINED_PATH, self._combined_stream)
        app.router.add_get(self.RAW_PATH, self._raw_stream)
        app.router.add_get(self.RAW_PATH + "/{streams:.*}", self._raw_stream)
        app.router.add_get(self.HISTORICAL_TRADES_PATH, self._historical_trades)
        app.router.add_get(self.RECENT_TRADES_PATH, self._recent_trades)
        app.router.add_get(self.PING_PATH, self._ping)
        app.router.add_get(self.TIME_PATH, self._time)
        return app

    # ---- WebSocket -------------------------------------------------------------------------

    async def _combined_stream(self, request: web.Request) -> web.WebSocketResponse:
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        return await self.serve_connection(
            request, lambda conn: self._read(conn, wrapped=True, streams=streams)
        )

    async def _raw_stream(self, request: web.Request) -> web.WebSocketResponse:
        streams = [s for s in request.match_info.get("streams", "").split("/") if s]
        return await self.serve_connection(
            request, lambda conn: self._read(conn, wrapped=False, streams=streams)
        )

    def _connection_jobs(self, conn: Connection) -> list[Job]:
        return [self._keepalive(conn), self._age_limit(conn)]

    def _subscribed(self, conn: Connection, trade: Trade) -> bool:
        return stream_name(trade.product) in conn.topics

    def _trade_frame(self, trade: Trade, wrapped: bool) -> str:
        return trade_frame(trade, combined=wrapped)

    def _malformed_frames(self, trade: Trade, wrapped: bool) -> list[str]:
        full = trade_frame(trade, combined=wrapped)
        partial: dict[str, Any] = {"e": "trade", "E": event_time_ms(trade), "s": trade.product}
        body = {"stream": stream_name(trade.product), "data": partial} if wrapped else partial
        return [full[: len(full) // 2], orjson.dumps(body).decode()]

    def _shutdown_connections(self) -> None:
        frame = server_shutdown_event(self._market.sim_time_us() // 1000)
        for conn in list(self._connections.values()):
            conn.send_text(frame)
            conn.close("server_shutdown", code=1001, message="server shutdown")

    async def _read(self, conn: Connection, *, wrapped: bool, streams: list[str]) -> None:
        conn.wrapped = wrapped
        conn.topics.update(dict.fromkeys(s.lower() for s in streams))
        recent: deque[float] = deque()
        while True:
            msg = await conn.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if self.handle_control(conn, msg.type, msg.data):
                continue
            conn.stats.messages_received += 1
            now = self._clock()
            recent.append(now)
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) > self.config.max_incoming_msgs_per_s:
                conn.close("rate_limit", code=1008, message="Too many requests")
                continue
            if msg.type is WSMsgType.TEXT:
                conn.send_text(orjson.dumps(self._answer(conn, msg.data)).decode())

    def _answer(self, conn: Connection, text: str) -> dict[str, Any]:
        """Reply to one JSON request (`{"method":"SUBSCRIBE","params":[..],"id":1}`)."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"error": {"code": 3, "msg": "Invalid JSON: expected value"}, "id": None}
        if not isinstance(request, dict):
            return {"error": {"code": 2, "msg": "Invalid request: expected an object"}, "id": None}
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        if method not in self.WS_METHODS:
            expected = ", ".join(self.WS_METHODS)
            msg = f"Invalid request: unknown variant `{method}`, expected one of {expected}"
            return {"error": {"code": 2, "msg": msg}, "id": request_id}
        if not isinstance(params, list):
            msg = "Invalid request: invalid type: expected a sequence"
            return {"error": {"code": 2, "msg": msg}, "id": request_id}
        result: Any = None
        if method == "SUBSCRIBE":
            conn.topics.update(dict.fromkeys(str(p).lower() for p in params))
        elif method == "UNSUBSCRIBE":
            for p in params:
                conn.topics.pop(str(p).lower(), None)
        elif method == "LIST_SUBSCRIPTIONS":
            result = list(conn.topics)
        elif method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined" or not isinstance(params[1], bool):
                return {"error": {"code": 0, "msg": "Unknown property"}, "id": request_id}
            conn.wrapped = params[1]
        else:  # GET_PROPERTY
            if params != ["combined"]:
                return {"error": {"code": 0, "msg": "Unknown property"}, "id": request_id}
            result = conn.wrapped
        return {"result": result, "id": request_id}

    async def _keepalive(self, conn: Connection) -> None:
        """Ping every `ping_interval_s`; drop the connection when no pong comes back."""
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            if self.silent:
                continue
            conn.pong_received.clear()
            conn.send_ping(str(self._market.sim_time_us() // 1000).encode())
            self.counters.pings_sent += 1
            try:
                await asyncio.wait_for(conn.pong_received.wait(), self.config.pong_timeout_s)
            except TimeoutError:
                conn.abort("pong_timeout")
                return

    async def _age_limit(self, conn: Connection) -> None:
        await asyncio.sleep(self.config.max_connection_s)
        conn.close("max_age", code=1000, message="connection lifetime exceeded")

    # ---- REST ------------------------------------------------------------------------------

    def _json(
        self, body: Any, status: int = 200, *, retry_after_s: float | None = None
    ) -> web.Response:
        headers = {self.USED_WEIGHT_HEADER: str(self._weights.used(self._clock()))}
        if retry_after_s is not None:
            headers["Retry-After"] = str(math.ceil(retry_after_s))
        return web.Response(
            body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    def _admit(self, weight: int) -> web.Response | None:
        """Count the request and spend its weight; a 429 response when refused."""
        forced = self.count_rest_request()
        now = self._clock()
        retry_after: float | None = forced
        if retry_after is None and not self._weights.try_spend(now, weight):
            retry_after = self._weights.retry_after_s(now)
        if retry_after is None:
            return None
        self.counters.rest_429s += 1
        limit = self.config.rest_weight_limit_1m
        msg = (
            f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE."
            " Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return self._json(
            {"code": self.TOO_MANY_REQUESTS_CODE, "msg": msg}, 429, retry_after_s=retry_after
        )

    def _symbol(self, query: Mapping[str, str]) -> str:
        symbol = query.get("symbol", "")
        if not symbol:
            raise _BadRequestError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if not _SYMBOL_RE.match(symbol):
            raise _BadRequestError(
                -1100,
                "Illegal characters found in parameter 'symbol'; "
                "legal range is '^[A-Z0-9-_.]{1,20}$'.",
            )
        if symbol not in self._log:
            raise _BadRequestError(self.INVALID_SYMBOL_CODE, "Invalid symbol.")
        return symbol

    @staticmethod
    def _int_param(query: Mapping[str, str], name: str) -> int | None:
        value = query.get(name)
        if value is None:
            return None
        if not _INT_RE.match(value):
            raise _BadRequestError(
                -1100,
                f"Illegal characters found in parameter '{name}'; "
                "legal range is '^[0-9]{1,20}$'.",
            )
        return int(value)

    def _limit(self, query: Mapping[str, str]) -> int:
        limit = self._int_param(query, "limit")
        if limit is None:
            return self.DEFAULT_LIMIT
        return max(1, min(limit, self.MAX_LIMIT))

    async def _historical_trades(self, request: web.Request) -> web.Response:
        """`?symbol=BTCUSDT&limit=500&fromId=N`: trades with id >= fromId, ascending; without
        fromId the most recent `limit`."""
        return self._trades_response(request, allow_from_id=True)

    async def _recent_trades(self, request: web.Request) -> web.Response:
        """`?symbol=BTCUSDT&limit=500`: the most recent `limit` trades, ascending."""
        return self._trades_response(request, allow_from_id=False)

    def _trades_response(self, request: web.Request, *, allow_from_id: bool) -> web.Response:
        refused = self._admit(self.TRADES_WEIGHT)
        if refused is not None:
            return refused
        self._market.catch_up()
        try:
            symbol = self._symbol(request.query)
            limit = self._limit(request.query)
            from_id = self._int_param(request.query, "fromId") if allow_from_id else None
        except _BadRequestError as exc:
            return self._json({"code": exc.code, "msg": exc.msg}, 400)
        if from_id is None:
            trades = self.trades(symbol)[-limit:]
        else:
            trades = self.trade_slice(symbol, from_id, from_id + limit - 1)
        return self._json([historical_trade(t) for t in trades])

    async def _ping(self, request: web.Request) -> web.Response:
        return self._admit(self.PING_WEIGHT) or self._json({})

    async def _time(self, request: web.Request) -> web.Response:
        return self._admit(self.PING_WEIGHT) or self._json(
            {"serverTime": self._market.sim_time_us() // 1000}
        )
