"""The unified trade event: the wire contract every downstream job reads (SPEC §4)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

EXCHANGES = ("binance", "coinbase")
SIDES = ("buy", "sell")


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """One trade, normalized. `trade_id` is the exchange's per-product id (not serialized: it is
    already part of `event_id`) and drives gap detection.

    Immutable, and one is built per trade: a msgspec `Struct` is built in C, ~4x faster than a
    NamedTuple (whose `__new__` is Python) and far faster than a frozen dataclass (which sets each
    field through `object.__setattr__`) — see bench/RESULTS.md. It holds only strings and numbers,
    so the garbage collector need not track it (`gc=False`). Fields are positional in this order.
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
        return {
            "event_id": self.event_id,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "price": self.price,
            "quantity": self.quantity,
            "quote_volume": self.price * self.quantity,
            "side": self.side,
            "timestamp": self.timestamp,
            "ingestion_timestamp": self.ingestion_timestamp,
        }

    def to_json(self) -> bytes:
        """The Kinesis record payload: one UTF-8 JSON object, the keys of `to_dict` in order.

        Encoded from a msgspec `Struct` in C rather than `orjson.dumps(self.to_dict())`: building
        the dict was most of the cost, and this runs once per trade (bench/RESULTS.md)."""
        exchange, symbol, price, quantity = self.exchange, self.symbol, self.price, self.quantity
        return _encode(
            _UnifiedEvent(
                f"{exchange}:{symbol}:{self.trade_id}",
                exchange,
                symbol,
                price,
                quantity,
                price * quantity,
                self.side,
                self.timestamp,
                self.ingestion_timestamp,
            )
        )


class _UnifiedEvent(msgspec.Struct, gc=False):
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

# Both clocks below run once per frame, so they format by table lookups: the prefix is formatted
# once per second (the trade time) or millisecond (the producer's clock), and the latest is kept
# as one tuple, which is read and replaced atomically, so threads never see a prefix of the wrong
# moment; the other digits come from tables. The same strings as `strftime`, at a third of the
# cost.
_DOT_THREE_DIGITS = tuple(f".{n:03d}" for n in range(1000))
_THREE_DIGITS_Z = tuple(f"{n:03d}Z" for n in range(1000))
_MILLIS_Z = tuple(f".{n:03d}Z" for n in range(1000))
_last_trade_second: tuple[int, str] = (-1, "")
_last_clock_milli: tuple[int, str] = (-1, "")


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds (0 to `MAX_EPOCH_MS`) -> ISO 8601 UTC with millisecond precision and
    `Z`."""
    global _last_trade_second
    seconds, millis = divmod(ms, 1000)
    cached, prefix = _last_trade_second
    if cached != seconds:
        prefix = _iso_seconds(seconds)
        _last_trade_second = (seconds, prefix)
    return prefix + _MILLIS_Z[millis]


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    # Trades of several products interleave within a few seconds: recent prefixes stay cached.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def utc_now_iso() -> str:
    """The producer's clock, ISO 8601 UTC with microseconds and `Z`: what
    `datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")` gives, to the character. (Formatted
    down to the millisecond once per millisecond: frames come microseconds apart.)"""
    global _last_clock_milli
    millis, micros = divmod(time.time_ns() // 1000, 1000)
    cached, prefix = _last_clock_milli
    if cached != millis:
        seconds, milli = divmod(millis, 1000)
        prefix = _iso_seconds(seconds) + _DOT_THREE_DIGITS[milli]
        _last_clock_milli = (millis, prefix)
    return prefix + _THREE_DIGITS_Z[micros]
