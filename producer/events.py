"""The unified trade event: the wire contract every downstream job reads (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import orjson

EXCHANGES = ("binance", "coinbase")
SIDES = ("buy", "sell")


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One trade, normalized. `trade_id` is the exchange's per-product id (not serialized: it is
    already part of `event_id`) and drives gap detection."""

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
            "quote_volume": self.quote_volume,
            "side": self.side,
            "timestamp": self.timestamp,
            "ingestion_timestamp": self.ingestion_timestamp,
        }

    def to_json(self) -> bytes:
        """The Kinesis record payload: one UTF-8 JSON object."""
        return orjson.dumps(self.to_dict())


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds -> ISO 8601 UTC with millisecond precision and `Z`."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    # Trades arrive in bursts within the same second: the formatted prefix is cached.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def utc_now_iso() -> str:
    """The producer's clock, ISO 8601 UTC with microseconds and `Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
