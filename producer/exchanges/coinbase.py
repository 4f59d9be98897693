"""Coinbase Exchange feed (`matches` + `heartbeat` channels) and the product trades endpoint.

A match frame::

    {"type": "match",              # or "last_match": the latest trade, sent once on subscribe
     "trade_id": 10,               # per product and consecutive -> gap detection
     "sequence": 50,               # NOT consecutive on this channel: never use it for gaps
     "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
     "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
     "time": "2014-11-07T08:19:27.028459Z",   # µs, kept verbatim -> `timestamp`
     "product_id": "BTC-USD",
     "size": "5.23512",            # base quantity
     "price": "400.23",
     "side": "sell"}               # the MAKER's side: the taker side is the opposite
A heartbeat (`{"type": "heartbeat", "last_trade_id": 20, "product_id": "BTC-USD", ...}`) names
the latest trade id, so a missed match shows as a gap even when no new match follows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeGuard

import orjson

from producer.events import TradeEvent
from producer.exchanges.base import (
    INF,
    Control,
    Exchange,
    ExchangeErrorFrame,
    Heartbeat,
    Parsed,
    Rejected,
    Skipped,
    frame_text,
    positive_decimal,
)
from producer.exchanges.frames import CoinbaseHeartbeat, decode_coinbase_feed

# Coinbase reports the maker's side; the taker is on the other one.
_TAKER_SIDE = {"buy": "sell", "sell": "buy"}


def _taker_side(maker_side: Any) -> str | None:
    return _TAKER_SIDE.get(maker_side) if type(maker_side) is str else None


def _valid_time(text: Any) -> TypeGuard[str]:
    if type(text) is not str or not text.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


class Coinbase(Exchange):
    name: ClassVar[str] = "coinbase"
    ws_url: ClassVar[str] = "wss://ws-feed.exchange.coinbase.com"
    rest_url: ClassVar[str] = "https://api.exchange.coinbase.com"
    rest_page_limit: ClassVar[int] = 1000
    channels: ClassVar[tuple[str, ...]] = ("matches", "heartbeat")
    # The feed closes a connection that has not subscribed within 5 s.
    subscribe_deadline_s: ClassVar[float] = 5.0
    # Public REST endpoints allow about 10 requests per second per IP.
    rest_requests_per_s: ClassVar[float] = 10.0

    def derive_symbol(self, native: str) -> str | None:
        base, sep, quote = native.upper().partition("-")
        return f"{base}-{quote}" if sep and base and quote else None

    def subscribe_message(self, products: list[str] | None = None) -> bytes:
        return orjson.dumps(
            {
                "type": "subscribe",
                "product_ids": products or self.products(),
                "channels": list(self.channels),
            }
        )

    def trades_path(self, product: str) -> str:
        return f"/products/{product}/trades"

    def trades_params(self, before_id: int, limit: int) -> dict[str, str]:
        """One page of trades with trade_id < `before_id`, newest first (Coinbase's `after`)."""
        return {"after": str(before_id), "limit": str(limit)}

    def parse(self, frame: bytes | str, ingestion_timestamp: str) -> Parsed:
        try:
            typed = decode_coinbase_feed(frame)
        except (ValueError, RecursionError):  # msgspec's errors and UnicodeDecodeError are
            # ValueErrors; a frame nested deeper than msgspec goes raises RecursionError
            return self.parse_generic(frame, ingestion_timestamp)
        if isinstance(typed, CoinbaseHeartbeat):
            return Heartbeat(typed.product_id, typed.last_trade_id)
        taker = _TAKER_SIDE.get(typed.side)
        time = typed.time
        try:  # `positive_decimal`, inlined: this runs for every trade
            price, quantity = float(typed.price), float(typed.size)
        except ValueError:
            return self.parse_generic(frame, ingestion_timestamp)
        if (
            taker is None
            or not (0.0 < price < INF and 0.0 < quantity < INF)
            or not _valid_time(time)
        ):
            return self.parse_generic(frame, ingestion_timestamp)
        symbol = self._canonical.get(typed.product_id) or self.resolve(typed.product_id)
        if symbol is None:
            return Skipped("unmapped_product")
        return TradeEvent(
            "coinbase", symbol, typed.trade_id, price, quantity, taker, time, ingestion_timestamp
        )

    def parse_generic(self, frame: bytes | str, ingestion_timestamp: str) -> Parsed:
        """Any frame, through `orjson.loads` and checks key by key: the control frames, and the
        reason a frame the typed path refused is malformed. Never raises."""
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return Rejected("invalid_json", frame_text(frame))
        if type(message) is not dict:
            return Rejected("not_an_object", frame_text(frame))
        kind = message.get("type")
        if kind == "match" or kind == "last_match":
            return self._trade(message, frame, ingestion_timestamp)
        if kind == "heartbeat":
            product, last_id = message.get("product_id"), message.get("last_trade_id")
            if type(product) is not str or type(last_id) is not int:
                return Rejected("bad_heartbeat", frame_text(frame))
            return Heartbeat(product, last_id)
        if kind == "error":
            reason = str(message.get("reason", ""))
            return ExchangeErrorFrame(str(message.get("message", "")), reason)
        if type(kind) is str:
            return Control(kind)
        return Rejected("unknown_frame", frame_text(frame))

    def _trade(
        self, message: dict[str, Any], frame: bytes | str, ingestion_timestamp: str
    ) -> TradeEvent | Skipped | Rejected:
        product, trade_id = message.get("product_id"), message.get("trade_id")
        if type(product) is not str or not product:
            return Rejected("missing_symbol", frame_text(frame))
        if type(trade_id) is not int or trade_id < 0:
            return Rejected("bad_trade_id", frame_text(frame))
        taker = _taker_side(message.get("side"))
        if taker is None:
            return Rejected("bad_side", frame_text(frame))
        time = message.get("time")
        if not _valid_time(time):
            return Rejected("bad_trade_time", frame_text(frame))
        price = positive_decimal(message.get("price"))
        quantity = positive_decimal(message.get("size"))
        if price is None:
            return Rejected("bad_price", frame_text(frame))
        if quantity is None:
            return Rejected("bad_quantity", frame_text(frame))
        symbol = self.resolve(product)
        if symbol is None:
            return Skipped("unmapped_product")
        return TradeEvent(  # positional: a third cheaper than keywords, once per trade
            "coinbase",
            symbol,
            trade_id,
            price,
            quantity,
            taker,  # side
            time,  # timestamp, verbatim
            ingestion_timestamp,
        )

    def parse_rest_trades(
        self, product: str, body: bytes, ingestion_timestamp: str
    ) -> list[TradeEvent]:
        """A product trades page, newest first::

        [{"time": "2021-04-17T16:43:30.244075Z", "trade_id": 881613, "price": "14.7775",
          "size": "0.04", "side": "sell"}]      # side: the maker's, as on the feed
        """
        rows = orjson.loads(body)
        if type(rows) is not list:
            raise ValueError(f"product trades returned {type(rows).__name__}, not a list")
        trades = []
        for row in rows:
            if type(row) is not dict:
                raise ValueError(f"malformed product trades row: {row!r}")
            # The same validation as a feed match: REST rows carry the same keys but the product.
            parsed = self._trade({**row, "product_id": product}, repr(row), ingestion_timestamp)
            if not isinstance(parsed, TradeEvent):
                raise ValueError(f"malformed product trades row ({parsed}): {row!r}")
            trades.append(parsed)
        trades.sort(key=lambda t: t.trade_id)
        return trades
