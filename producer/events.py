"""The unified trade event: the wire contract every downstream job reads (SPEC §4)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

import msgspec

EXCHANGES = ("binance", "coinbase")
SIDES = ("buy", "sell")


class TradeEvent(NamedTuple):
    """One trade, normalized. `trade_id` is the exchange's per-product id (not serialized: it is
    already part of `event_id`) and drives gap detection.

    Immutable like a frozen dataclass, but built ~6x faster: a frozen dataclass sets each field
    through `object.__setattr__`, which was the largest single cost of normalizing a frame
    (bench/RESULTS.md). Fields are positional in this order.
    """

    exchange: str
    symbol: str
    trade_id: int
    price: float
    quantity: float
    side: str
    timestamp: str
    ingestion_timestamp: str

    @property
    def event_id(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.trade_id}"

    @property
    def quote_volume(self) -> float:
        return self.price * self.quantity

    def to_dict(self) -> dict[str, object]:
        exchange, symbol, trade_id, price, quantity, side, timestamp, ingestion_timestamp = self
        return {
            "event_id": f"{exchange}:{symbol}:{trade_id}",
            "exchange": exchange,
            "symbol": symbol,
            "price": price,
            "quantity": quantity,
            "quote_volume": price * quantity,
            "side": side,
            "timestamp": timestamp,
            "ingestion_timestamp": ingestion_timestamp,
        }

    def to_json(self) -> bytes:
        """The Kinesis record payload: one UTF-8 JSON object, the keys of `to_dict` in order.

        Encoded from a msgspec `Struct` in C rather than `orjson.dumps(self.to_dict())`: building
        the dict was most of the cost, and this runs once per trade (bench/RESULTS.md)."""
        exchange, symbol, trade_id, price, quantity, side, timestamp, ingestion_timestamp = self
        return _encode(
            _UnifiedEvent(
                f"{exchange}:{symbol}:{trade_id}",
                exchange,
                symbol,
                price,
                quantity,
                price * quantity,
                side,
                timestamp,
                ingestion_timestamp,
            )
        )


class _UnifiedEvent(msgspec.Struct):
    """The wire form of a `TradeEvent` (SPEC §4), fields in `to_dict`'s order."""

    event_id: str
    exchange: str
    symbol: str
    price: float
    quantity: float
    quote_volume: float
    side: str
    timestamp: str
    ingestion_timestamp: str


_encode = msgspec.json.Encoder().encode


# The last millisecond an ISO 8601 timestamp (year 9999) can name.
MAX_EPOCH_MS = 253_402_300_799_999


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds (0 to `MAX_EPOCH_MS`) -> ISO 8601 UTC with millisecond precision and
    `Z`."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    # Trades arrive in bursts within the same second: the formatted prefix is cached.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def utc_now_iso() -> str:
    """The producer's clock, ISO 8601 UTC with microseconds and `Z`.

    `datetime.now(UTC).strftime(...)` to the character (the clock truncated to the microsecond),
    at a quarter of its cost: this runs once per frame.
    """
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{_iso_seconds(seconds)}.{nanos // 1000:06d}Z"
