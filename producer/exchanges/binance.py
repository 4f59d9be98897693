"""Binance spot `<symbol>@trade` streams and the `historicalTrades` REST endpoint.

A combined-stream trade frame (`/stream?streams=btcusdt@trade/ethusdt@trade`)::

    {"stream": "btcusdt@trade",
     "data": {"e": "trade",          # event type
              "E": 1672515782136,    # event time (ms)
              "s": "BTCUSDT",        # native symbol
              "t": 12345,            # trade id, per symbol and consecutive
              "p": "0.001",          # price (decimal string)
              "q": "100",            # quantity, base asset (decimal string)
              "T": 1672515782136,    # trade time (ms) -> `timestamp`
              "m": true,             # buyer is the maker => the taker SOLD
              "M": true}}            # ignore
Frames from before 2024-06-18 also carry `b`/`a` (order ids); unknown keys are ignored.
Control replies look like `{"result": null, "id": 1}`; maintenance sends `{"e": "serverShutdown"}`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from producer.events import MAX_EPOCH_MS, TradeEvent, iso_from_ms
from producer.exchanges.base import (
    INF,
    Control,
    Exchange,
    ExchangeErrorFrame,
    Parsed,
    Rejected,
    ServerShutdown,
    Skipped,
    frame_text,
    positive_decimal,
)
from producer.exchanges.frames import decode_binance_trade
from producer.symbols import split_binance_symbol


class Binance(Exchange):
    name: ClassVar[str] = "binance"
    ws_url: ClassVar[str] = "wss://stream.binance.com:9443"
    rest_url: ClassVar[str] = "https://api.binance.com"
    rest_page_limit: ClassVar[int] = 1000
    trades_path: ClassVar[str] = "/api/v3/historicalTrades"
    # Request weight of one historicalTrades call and the per-minute budget (X-MBX-USED-WEIGHT-1M).
    trades_weight: ClassVar[int] = 25
    weight_limit_1m: ClassVar[int] = 6000
    weight_header: ClassVar[str] = "X-MBX-USED-WEIGHT-1M"
    # A connection is only valid for 24 h; Binance also limits incoming messages to 5 per second.
    max_connection_s: ClassVar[float] = 24 * 3600.0
    max_outbound_msgs_per_s: ClassVar[float] = 5.0

    def derive_symbol(self, native: str) -> str | None:
        return split_binance_symbol(native)

    def stream_path(self, products: list[str] | None = None) -> str:
        """The combined-stream path for the trade streams of `products` (default: configured)."""
        names = "/".join(f"{p.lower()}@trade" for p in (products or self.products()))
        return f"/stream?streams={names}"

    def trades_params(self, product: str, from_id: int, limit: int) -> dict[str, str]:
        """Query parameters of one historicalTrades page starting at `from_id` (inclusive)."""
        return {"symbol": product.upper(), "fromId": str(from_id), "limit": str(limit)}

    def latest_trade_params(self, product: str) -> dict[str, str]:
        """Query parameters of a page holding only the most recent trade."""
        return {"symbol": product.upper(), "limit": "1"}

    def parse(self, frame: bytes | str, ingestion_timestamp: str) -> Parsed:
        try:
            trade = decode_binance_trade(frame).data
        except (ValueError, RecursionError):  # msgspec's errors and UnicodeDecodeError are
            # ValueErrors; a frame nested deeper than msgspec goes raises RecursionError
            return self.parse_generic(frame, ingestion_timestamp)
        try:  # `positive_decimal`, inlined: this runs for every trade
            price, quantity = float(trade.p), float(trade.q)
        except ValueError:
            return self.parse_generic(frame, ingestion_timestamp)
        if not (0.0 < price < INF and 0.0 < quantity < INF):
            return self.parse_generic(frame, ingestion_timestamp)
        symbol = self._canonical.get(trade.s) or self.resolve(trade.s)
        if symbol is None:
            return Skipped("unmapped_product")
        return TradeEvent(
            "binance",
            symbol,
            trade.t,
            price,
            quantity,
            "sell" if trade.m else "buy",
            iso_from_ms(trade.T),
            ingestion_timestamp,
        )

    def parse_generic(self, frame: bytes | str, ingestion_timestamp: str) -> Parsed:
        """Any frame, through `orjson.loads` and checks key by key: the control frames, and the
        reason a trade frame the typed path refused is malformed. Never raises."""
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return Rejected("invalid_json", frame_text(frame))
        if type(message) is not dict:
            return Rejected("not_an_object", frame_text(frame))
        data = message.get("data", message) if "stream" in message else message
        if type(data) is not dict:
            return Rejected("not_an_object", frame_text(frame))
        event = data.get("e")
        if event == "trade":
            return self._trade(data, frame, ingestion_timestamp)
        if event == "serverShutdown":
            return ServerShutdown()
        if "result" in data and "id" in data:
            return Control("result")
        error = data.get("error")
        if type(error) is dict:
            return ExchangeErrorFrame(str(error.get("msg", "")), str(error.get("code", "")))
        if type(event) is str:
            return Control(event)
        return Rejected("unknown_frame", frame_text(frame))

    def _trade(
        self, data: dict[str, Any], frame: bytes | str, ingestion_timestamp: str
    ) -> TradeEvent | Skipped | Rejected:
        native, trade_id = data.get("s"), data.get("t")
        trade_ms, maker = data.get("T"), data.get("m")
        if type(native) is not str or not native:
            return Rejected("missing_symbol", frame_text(frame))
        if type(trade_id) is not int or trade_id < 0:
            return Rejected("bad_trade_id", frame_text(frame))
        if type(trade_ms) is not int or not 0 < trade_ms <= MAX_EPOCH_MS:
            return Rejected("bad_trade_time", frame_text(frame))
        if type(maker) is not bool:
            return Rejected("bad_maker_flag", frame_text(frame))
        price, quantity = positive_decimal(data.get("p")), positive_decimal(data.get("q"))
        if price is None:
            return Rejected("bad_price", frame_text(frame))
        if quantity is None:
            return Rejected("bad_quantity", frame_text(frame))
        symbol = self.resolve(native)
        if symbol is None:
            return Skipped("unmapped_product")
        return TradeEvent(  # positional: a third cheaper than keywords, once per trade
            "binance",
            symbol,
            trade_id,
            price,
            quantity,
            "sell" if maker else "buy",  # side: the taker's
            iso_from_ms(trade_ms),  # timestamp
            ingestion_timestamp,
        )

    def parse_rest_trades(
        self, product: str, body: bytes, ingestion_timestamp: str
    ) -> list[TradeEvent]:
        """A historicalTrades page::

        [{"id": 28457, "price": "4.00000100", "qty": "12.00000000",
          "quoteQty": "48.000012", "time": 1499865549590, "isBuyerMaker": true,
          "isBestMatch": true}]
        """
        rows = orjson.loads(body)
        if type(rows) is not list:
            raise ValueError(f"historicalTrades returned {type(rows).__name__}, not a list")
        trades = []
        for row in rows:
            if type(row) is not dict:
                raise ValueError(f"malformed historicalTrades row: {row!r}")
            # The same validation as a stream frame, under the stream's key names.
            as_frame = {
                "s": product,
                "t": row.get("id"),
                "p": row.get("price"),
                "q": row.get("qty"),
                "T": row.get("time"),
                "m": row.get("isBuyerMaker"),
            }
            parsed = self._trade(as_frame, repr(row), ingestion_timestamp)
            if not isinstance(parsed, TradeEvent):
                raise ValueError(f"malformed historicalTrades row ({parsed}): {row!r}")
            trades.append(parsed)
        trades.sort(key=lambda t: t.trade_id)
        return trades
