"""What parsing a frame can yield, and the interface every exchange protocol implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from producer.events import TradeEvent
from producer.symbols import SymbolMap


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The exchange says the latest trade on `product` is `last_trade_id` (gap detection)."""

    product: str
    last_trade_id: int


@dataclass(frozen=True, slots=True)
class Control:
    """A protocol frame that is not a trade (subscription ack, result reply, other channel)."""

    kind: str


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """The server announced it is going away: reconnect now."""


@dataclass(frozen=True, slots=True)
class ExchangeErrorFrame:
    """The exchange reported an error on the connection (e.g. Coinbase `error`)."""

    message: str
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed trade we do not publish (product outside the symbol map, other event)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A malformed frame: counted, logged, never raised out of the parser."""

    reason: str
    frame: str


Parsed = TradeEvent | Heartbeat | Control | ServerShutdown | ExchangeErrorFrame | Skipped | Rejected

# A function that turns an exchange's native product into the canonical symbol, or None.
SymbolResolver = Callable[[str], str | None]


INF = math.inf


def positive_decimal(text: Any) -> float | None:
    """A decimal string as a finite positive float, else None."""
    if type(text) is not str:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 < value < INF else None  # NaN fails both comparisons


def frame_text(frame: bytes | str, limit: int = 500) -> str:
    """A frame as printable text for logs and DLQs, cut to `limit` characters."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return text if len(text) <= limit else text[:limit] + "…"


class Exchange(ABC):
    """An exchange's protocol: endpoints as class attributes, pure parsing and request building.

    `all_products=True` also normalizes products outside the symbol map (the `normalize` CLI).
    """

    name: ClassVar[str]
    ws_url: ClassVar[str]
    rest_url: ClassVar[str]
    # Largest page the REST trades endpoint returns.
    rest_page_limit: ClassVar[int] = 1000

    def __init__(self, symbols: SymbolMap, *, all_products: bool = False) -> None:
        self.symbols = symbols
        self.all_products = all_products
        # native product (upper case) -> canonical symbol, for this exchange: one lookup a trade.
        self._canonical = symbols.reverse(self.name)

    def resolve(self, native: str) -> str | None:
        canonical = self._canonical.get(native)  # frames name products in upper case already
        if canonical is None:
            canonical = self._canonical.get(native.upper())
            if canonical is None and self.all_products:
                return self.derive_symbol(native)
        return canonical

    def products(self) -> list[str]:
        """The native products this exchange is subscribed to."""
        return self.symbols.natives(self.name)

    @abstractmethod
    def derive_symbol(self, native: str) -> str | None:
        """The canonical name of a product outside the map, or None if it cannot be named."""

    @abstractmethod
    def parse(self, frame: bytes | str, ingestion_timestamp: str) -> Parsed:
        """One WebSocket frame -> what it means. Never raises."""

    @abstractmethod
    def parse_rest_trades(
        self, product: str, body: bytes, ingestion_timestamp: str
    ) -> list[TradeEvent]:
        """A REST trades page -> trades, ascending by trade id. Raises ValueError if malformed."""
