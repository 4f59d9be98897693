"""Canonical symbols (`BASE-QUOTE`) and each exchange's native product for them (SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Quote assets a Binance symbol can end with, longest first so that e.g. "FDUSD" wins over "USD"
# and "USDT" over "USD". Used only to name products outside the configured map (--all-products).
BINANCE_QUOTE_ASSETS: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "FDUSD",
            "BUSD",
            "TUSD",
            "USDP",
            "DAI",
            "BTC",
            "ETH",
            "BNB",
            "EUR",
            "TRY",
            "GBP",
            "AUD",
            "BRL",
            "JPY",
            "RUB",
            "UAH",
            "ZAR",
            "IDR",
            "NGN",
            "PLN",
            "RON",
            "ARS",
            "MXN",
            "COP",
            "CZK",
            "XRP",
            "TRX",
            "DOGE",
            "DOT",
            "PAX",
            "USDS",
            "BIDR",
            "BKRW",
            "IDRT",
            "VAI",
            "AEUR",
            "EURI",
            "USD",
            "JPYC",
            "SOL",
        ),
        key=len,
        reverse=True,
    )
)


def split_binance_symbol(native: str) -> str | None:
    """`BNBBTC` -> `BNB-BTC`; None when no known quote asset ends the symbol."""
    upper = native.upper()
    for quote in BINANCE_QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[: -len(quote)]}-{quote}"
    return None


@dataclass(frozen=True)
class SymbolMap:
    """canonical symbol -> {exchange: native product}, with the reverse lookup per exchange."""

    products: Mapping[str, Mapping[str, str]]
    _reverse: dict[str, dict[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        reverse: dict[str, dict[str, str]] = {}
        for canonical, per_exchange in self.products.items():
            for exchange, native in per_exchange.items():
                reverse.setdefault(exchange, {})[native.upper()] = canonical
        object.__setattr__(self, "_reverse", reverse)

    def canonical(self, exchange: str, native: str) -> str | None:
        """The canonical symbol for an exchange's product, or None if it is not mapped."""
        return self._reverse.get(exchange, {}).get(native.upper())

    def reverse(self, exchange: str) -> dict[str, str]:
        """native product (upper case) -> canonical symbol, for one exchange (a copy)."""
        return dict(self._reverse.get(exchange, {}))

    def natives_by_symbol(self, exchange: str) -> dict[str, str]:
        """canonical symbol -> the exchange's native product, for the symbols it lists."""
        return {s: p[exchange] for s, p in self.products.items() if exchange in p}

    def natives(self, exchange: str) -> list[str]:
        """Every native product configured for `exchange`, in configuration order."""
        return [p[exchange] for p in self.products.values() if exchange in p]

    def symbols(self) -> list[str]:
        return list(self.products)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str, str]]) -> SymbolMap:
        """Build from (canonical, exchange, native) triples."""
        products: dict[str, dict[str, str]] = {}
        for canonical, exchange, native in pairs:
            products.setdefault(canonical, {})[exchange] = native
        return cls(products)
