"""A deterministic, seeded market for the exchange simulator (pure: no sockets, no asyncio).

A `Scenario` describes the market (symbols, seed, start time), scripted market events (whales,
volume bursts, cross-exchange dislocations, silent gaps) and delivery faults. `Market` turns it into
trades, lazily and in time order: `Market(scenario).advance(until_sim_s)` returns the trades that
happen up to that simulated second, and the same scenario always yields the same trades however
`advance` is chunked.

How the trades are made, per (exchange, native product) stream:
- arrivals: a Poisson process whose rate is `SymbolSpec.trades_per_s` times the product of active
  `VolumeBurst` multipliers, and 0 inside a `SilentGap` (exact time-change sampling);
- prices: one shared log-normal random walk per canonical symbol (so both exchanges quote the same
  price), plus small independent per-trade noise per exchange, times `1 + pct/100` inside a
  `Dislocation`, rounded to the symbol's tick;
- sizes: Pareto-distributed quote volume (heavy tail), capped at `max_quote_volume`, scaled by
  `sqrt(multiplier)` inside a `VolumeBurst`, converted to a base quantity at the trade price;
- ids: per-product consecutive integers from a seeded start; taker side buy/sell with p = 1/2.

Faults are part of the scenario but the market ignores them: they only affect WebSocket delivery
(the server applies them); REST always serves every trade.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

BINANCE = "binance"
COINBASE = "coinbase"
EXCHANGES: tuple[str, ...] = (BINANCE, COINBASE)
SIDES: tuple[str, ...] = ("buy", "sell")
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Binance prints every decimal with 8 places ("60000.12000000").
BINANCE_DECIMALS = 8
MIN_FIRST_TRADE_ID = 100_000
MAX_FIRST_TRADE_ID = 9_999_999


def _check_exchange(exchange: str | None, *, optional: bool) -> None:
    if exchange is None and optional:
        return
    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {EXCHANGES}, got {exchange!r}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


# --------------------------------------------------------------------------------------------
# Scenario configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolSpec:
    """One canonical symbol and its native product on each exchange (None: not listed there).

    `trades_per_s` is the base arrival rate of EACH exchange's product, in simulated seconds.
    Natural trades never exceed `max_quote_volume` (default below the 100 000 whale threshold), so
    every whale the pipeline finds is a scripted `Whale`.
    """

    symbol: str = "BTC-USDT"
    binance: str | None = "BTCUSDT"
    coinbase: str | None = "BTC-USD"
    base_price: float = 60_000.0
    trades_per_s: float = 5.0
    price_decimals: int = 2
    size_decimals: int = 5
    min_quote_volume: float = 20.0
    max_quote_volume: float = 90_000.0
    size_alpha: float = 1.3
    volatility_per_sqrt_s: float = 0.0002
    noise_bps: float = 1.0

    def __post_init__(self) -> None:
        base, sep, quote = self.symbol.partition("-")
        if not (sep and base and quote and self.symbol == self.symbol.upper()):
            raise ValueError(f"symbol must be canonical BASE-QUOTE upper case, got {self.symbol!r}")
        if self.binance is None and self.coinbase is None:
            raise ValueError(f"{self.symbol}: listed on no exchange")
        _check_positive("base_price", self.base_price)
        _check_non_negative("trades_per_s", self.trades_per_s)
        _check_positive("min_quote_volume", self.min_quote_volume)
        if self.max_quote_volume < self.min_quote_volume:
            raise ValueError("max_quote_volume must be >= min_quote_volume")
        _check_positive("size_alpha", self.size_alpha)
        _check_non_negative("volatility_per_sqrt_s", self.volatility_per_sqrt_s)
        _check_non_negative("noise_bps", self.noise_bps)
        for name in ("price_decimals", "size_decimals"):
            value = getattr(self, name)
            if not 0 <= value <= BINANCE_DECIMALS:
                raise ValueError(f"{name} must be in 0..{BINANCE_DECIMALS}, got {value}")

    def product(self, exchange: str) -> str | None:
        """The native product id of this symbol on `exchange` (None when not listed)."""
        _check_exchange(exchange, optional=False)
        return self.binance if exchange == BINANCE else self.coinbase


# Scripted market events. All times are SIMULATED seconds from the scenario start.


@dataclass(frozen=True)
class Whale:
    """One trade of `quote_volume` (quote currency) on `exchange`/`symbol` at `at_s`."""

    at_s: float
    exchange: str
    symbol: str
    quote_volume: float
    side: str = "buy"  # taker side

    def __post_init__(self) -> None:
        _check_non_negative("at_s", self.at_s)
        _check_exchange(self.exchange, optional=False)
        _check_positive("quote_volume", self.quote_volume)
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")


@dataclass(frozen=True)
class VolumeBurst:
    """Arrival rate x `multiplier` and sizes x sqrt(`multiplier`) during the window.

    `exchange`/`symbol` None: every exchange/symbol.
    """

    start_s: float
    duration_s: float
    multiplier: float
    exchange: str | None = None
    symbol: str | None = None

    def __post_init__(self) -> None:
        _check_non_negative("start_s", self.start_s)
        _check_positive("duration_s", self.duration_s)
        _check_positive("multiplier", self.multiplier)
        _check_exchange(self.exchange, optional=True)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Dislocation:
    """`exchange`'s prices for `symbol` are offset by `pct` percent during the window."""

    start_s: float
    duration_s: float
    exchange: str
    symbol: str
    pct: float

    def __post_init__(self) -> None:
        _check_non_negative("start_s", self.start_s)
        _check_positive("duration_s", self.duration_s)
        _check_exchange(self.exchange, optional=False)
        if not self.pct > -100:
            raise ValueError(f"pct must be > -100, got {self.pct}")

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class SilentGap:
    """No trades at all during the window (`exchange` None: on both exchanges)."""

    start_s: float
    duration_s: float
    exchange: str | None = None

    def __post_init__(self) -> None:
        _check_non_negative("start_s", self.start_s)
        _check_positive("duration_s", self.duration_s)
        _check_exchange(self.exchange, optional=True)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


# Delivery faults: they change what the WebSocket sends, never what happened (REST has it all).
# Trade counts (`at_trade`) are 1-based and count the trades of that exchange, all products
# together, in the order they happen. A fault that needs a recipient (Malformed, GoSilent,
# ServerShutdown) fires on the first trade >= `at_trade` that has a subscribed connection.


@dataclass(frozen=True)
class DropConnections:
    """Close each WebSocket abruptly (TCP close, no close frame) after every N trades it got."""

    every_n_trades: int
    exchange: str | None = None

    def __post_init__(self) -> None:
        _check_positive("every_n_trades", self.every_n_trades)
        _check_exchange(self.exchange, optional=True)


@dataclass(frozen=True)
class GoSilent:
    """From trade `at_trade` on, connections stay open but get no frames for `duration_s` REAL
    seconds (trades of that time are not sent; no heartbeats, no pings)."""

    at_trade: int
    duration_s: float
    exchange: str

    def __post_init__(self) -> None:
        _check_positive("at_trade", self.at_trade)
        _check_positive("duration_s", self.duration_s)
        _check_exchange(self.exchange, optional=False)


@dataclass(frozen=True)
class Malformed:
    """Before trade `at_trade`, send a truncated JSON frame, then a JSON object missing fields."""

    at_trade: int
    exchange: str

    def __post_init__(self) -> None:
        _check_positive("at_trade", self.at_trade)
        _check_exchange(self.exchange, optional=False)


@dataclass(frozen=True)
class SkipTradeIds:
    """Trades `at_trade` .. `at_trade + count - 1` are not sent on the WebSocket."""

    at_trade: int
    count: int
    exchange: str

    def __post_init__(self) -> None:
        _check_positive("at_trade", self.at_trade)
        _check_positive("count", self.count)
        _check_exchange(self.exchange, optional=False)


@dataclass(frozen=True)
class ServerShutdown:
    """Binance only: instead of trade `at_trade`, send `{"e":"serverShutdown","E":ms}` to every
    connection and close them (with a close frame)."""

    at_trade: int

    def __post_init__(self) -> None:
        _check_positive("at_trade", self.at_trade)


@dataclass(frozen=True)
class Rest429:
    """The `at_request_n`-th REST request (1-based, per exchange) gets HTTP 429 with
    `Retry-After: retry_after_s` (`exchange` None: on both exchanges)."""

    at_request_n: int
    retry_after_s: int = 1
    exchange: str | None = None

    def __post_init__(self) -> None:
        _check_positive("at_request_n", self.at_request_n)
        _check_non_negative("retry_after_s", self.retry_after_s)
        _check_exchange(self.exchange, optional=True)


Event = Whale | VolumeBurst | Dislocation | SilentGap
Fault = DropConnections | GoSilent | Malformed | SkipTradeIds | ServerShutdown | Rest429
EVENT_TYPES: tuple[type[Event], ...] = (Whale, VolumeBurst, Dislocation, SilentGap)
FAULT_TYPES: tuple[type[Fault], ...] = (
    DropConnections,
    GoSilent,
    Malformed,
    SkipTradeIds,
    ServerShutdown,
    Rest429,
)


def fault_applies(fault: Fault, exchange: str) -> bool:
    """Whether `fault` concerns `exchange` (ServerShutdown is a Binance message)."""
    if isinstance(fault, ServerShutdown):
        return exchange == BINANCE
    return fault.exchange is None or fault.exchange == exchange


def _item_to_dict(item: Event | Fault) -> dict[str, Any]:
    return {"type": type(item).__name__, **asdict(item)}


def _item_from_dict(data: Mapping[str, Any], kinds: Iterable[type]) -> Any:
    by_name = {kind.__name__: kind for kind in kinds}
    kind_name = data.get("type")
    if kind_name not in by_name:
        raise ValueError(f"unknown type {kind_name!r}; expected one of {sorted(by_name)}")
    kind = by_name[kind_name]
    known = {f.name for f in fields(kind)}
    extra = set(data) - known - {"type"}
    if extra:
        raise ValueError(f"{kind_name}: unknown field(s) {sorted(extra)}")
    return kind(**{k: v for k, v in data.items() if k != "type"})


def _parse_start(value: str | datetime) -> datetime:
    start = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware (UTC), got {value!r}")
    return start.astimezone(UTC)


@dataclass(frozen=True)
class Scenario:
    """Everything that makes a simulated market: seed, start, symbols, events and faults.

    `duration_s` (simulated seconds) is where the market ends when the simulator is asked to stop
    there; None: it runs until stopped. Lists are accepted and stored as tuples.
    """

    seed: int = 7
    start: datetime = DEFAULT_START
    symbols: Sequence[SymbolSpec] = (SymbolSpec(),)
    events: Sequence[Event] = ()
    faults: Sequence[Fault] = ()
    duration_s: float | None = None

    FORMAT_VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _parse_start(self.start))
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "events", tuple(self.events))
        object.__setattr__(self, "faults", tuple(self.faults))
        if not self.symbols:
            raise ValueError("a scenario needs at least one symbol")
        if self.duration_s is not None:
            _check_positive("duration_s", self.duration_s)
        seen: set[str] = set()
        products: set[tuple[str, str]] = set()
        for spec in self.symbols:
            if spec.symbol in seen:
                raise ValueError(f"symbol {spec.symbol} listed twice")
            seen.add(spec.symbol)
            for exchange in EXCHANGES:
                product = spec.product(exchange)
                if product is not None:
                    if (exchange, product) in products:
                        raise ValueError(f"{exchange} product {product} mapped twice")
                    products.add((exchange, product))
        for event in self.events:
            if not isinstance(event, EVENT_TYPES):
                raise TypeError(f"not a market event: {event!r}")
            self._check_event(event)
        for fault in self.faults:
            if not isinstance(fault, FAULT_TYPES):
                raise TypeError(f"not a fault: {fault!r}")

    def _check_event(self, event: Event) -> None:
        symbol = getattr(event, "symbol", None)
        exchange = getattr(event, "exchange", None)
        if symbol is not None:
            spec = self.symbol_spec(symbol)
            if exchange is not None and spec.product(exchange) is None:
                raise ValueError(f"{event!r}: {symbol} is not listed on {exchange}")
        if isinstance(event, Whale):
            for gap in self.events:
                if (
                    isinstance(gap, SilentGap)
                    and gap.exchange in (None, event.exchange)
                    and gap.start_s <= event.at_s < gap.end_s
                ):
                    raise ValueError(f"{event!r} falls inside {gap!r}")

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        for spec in self.symbols:
            if spec.symbol == symbol:
                return spec
        raise ValueError(
            f"unknown symbol {symbol!r}; scenario has {[s.symbol for s in self.symbols]}"
        )

    def products(self, exchange: str) -> list[str]:
        """Native products listed on `exchange`, in symbol order."""
        return [p for spec in self.symbols if (p := spec.product(exchange)) is not None]

    def canonical_symbol(self, exchange: str, product: str) -> str:
        for spec in self.symbols:
            if spec.product(exchange) == product:
                return spec.symbol
        raise ValueError(f"unknown {exchange} product {product!r}")

    # ---- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.FORMAT_VERSION,
            "seed": self.seed,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "duration_s": self.duration_s,
            "symbols": [asdict(spec) for spec in self.symbols],
            "events": [_item_to_dict(event) for event in self.events],
            "faults": [_item_to_dict(fault) for fault in self.faults],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; missing keys take the defaults, unknown keys are errors.

        Example: `{"seed": 7, "duration_s": 5400, "symbols": [{"symbol": "BTC-USDT"}],
        "events": [{"type": "Whale", "at_s": 600, "exchange": "binance", "symbol": "BTC-USDT",
        "quote_volume": 500000, "side": "buy"}], "faults": [{"type": "DropConnections",
        "every_n_trades": 500}]}`.
        """
        known = {"version", "seed", "start", "duration_s", "symbols", "events", "faults"}
        extra = set(data) - known
        if extra:
            raise ValueError(f"scenario: unknown field(s) {sorted(extra)}")
        version = data.get("version", cls.FORMAT_VERSION)
        if version != cls.FORMAT_VERSION:
            raise ValueError(f"scenario format version {version!r} unsupported")
        kwargs: dict[str, Any] = {}
        for key in ("seed", "start", "duration_s"):
            if key in data:
                kwargs[key] = data[key]
        if "symbols" in data:
            kwargs["symbols"] = tuple(SymbolSpec(**spec) for spec in data["symbols"])
        kwargs["events"] = tuple(_item_from_dict(e, EVENT_TYPES) for e in data.get("events", ()))
        kwargs["faults"] = tuple(_item_from_dict(f, FAULT_TYPES) for f in data.get("faults", ()))
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a scenario from a JSON file (the `to_dict` shape)."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Trades
# --------------------------------------------------------------------------------------------


def epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def iso_timestamp(time_us: int, *, precision: Literal["ms", "us"]) -> str:
    """`2026-01-01T00:00:00.123Z` (ms) or `2026-01-01T00:00:00.123456Z` (us), exact integers."""
    moment = _EPOCH + timedelta(microseconds=time_us)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if precision == "ms":
        return f"{base}.{moment.microsecond // 1000:03d}Z"
    return f"{base}.{moment.microsecond:06d}Z"


def format_decimal(value: Decimal, exchange: str) -> str:
    """Binance: fixed 8 places ("60000.12000000"); Coinbase: natural ("60000.12", "70")."""
    if exchange == BINANCE:
        return f"{value:.{BINANCE_DECIMALS}f}"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as the exchange reports it.

    `price`/`size` are the exchange's decimal strings; `side` is the TAKER side; `time_us` is the
    exchange trade time in microseconds since the epoch (a whole millisecond on Binance); `sim_s`
    is when it happened in simulated seconds from the scenario start.
    """

    exchange: str
    symbol: str
    product: str
    trade_id: int
    price: str
    size: str
    side: str
    time_us: int
    sim_s: float
    whale: bool = False

    @property
    def time_ms(self) -> int:
        return self.time_us // 1000

    @property
    def maker_side(self) -> str:
        return "sell" if self.side == "buy" else "buy"

    @property
    def quote_volume(self) -> float:
        return float(Decimal(self.price) * Decimal(self.size))

    @property
    def timestamp(self) -> str:
        """ISO 8601 UTC trade time at the exchange's precision (ms Binance, us Coinbase)."""
        return iso_timestamp(self.time_us, precision="ms" if self.exchange == BINANCE else "us")

    @property
    def event_id(self) -> str:
        """The unified event id the producer must give this trade (SPEC §4)."""
        return f"{self.exchange}:{self.symbol}:{self.trade_id}"


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


class _MidPrice:
    """A per-symbol log-normal random walk on a 1 s grid, extended lazily, interpolated in log."""

    def __init__(self, seed: int, spec: SymbolSpec) -> None:
        self._rng = random.Random(f"{seed}:{spec.symbol}:mid")
        self._sigma = spec.volatility_per_sqrt_s
        self._log_prices = [math.log(spec.base_price)]

    def at(self, sim_s: float) -> float:
        index = int(sim_s)
        while len(self._log_prices) <= index + 1:
            self._log_prices.append(self._log_prices[-1] + self._rng.gauss(0.0, self._sigma))
        frac = sim_s - index
        low, high = self._log_prices[index], self._log_prices[index + 1]
        return math.exp(low + (high - low) * frac)


class _ProductStream:
    """The trades of one (exchange, product), generated one at a time in time order."""

    def __init__(
        self,
        scenario: Scenario,
        spec: SymbolSpec,
        exchange: str,
        product: str,
        mid: _MidPrice,
    ) -> None:
        self.exchange = exchange
        self.product = product
        self._spec = spec
        self._mid = mid
        self._start_us = epoch_us(scenario.start)
        prefix = f"{scenario.seed}:{exchange}:{product}"
        # Arrivals and marks (price noise, size, side) draw from separate generators so that
        # whales never shift the arrival sequence.
        self._arrival_rng = random.Random(f"{prefix}:arrivals")
        self._mark_rng = random.Random(f"{prefix}:marks")
        self.first_trade_id = random.Random(f"{prefix}:ids").randint(
            MIN_FIRST_TRADE_ID, MAX_FIRST_TRADE_ID
        )
        self._next_id = self.first_trade_id
        events = scenario.events
        self._bursts = [
            e
            for e in events
            if isinstance(e, VolumeBurst)
            and e.exchange in (None, exchange)
            and e.symbol in (None, spec.symbol)
        ]
        self._gaps = [
            e for e in events if isinstance(e, SilentGap) and e.exchange in (None, exchange)
        ]
        self._dislocations = [
            e
            for e in events
            if isinstance(e, Dislocation) and e.exchange == exchange and e.symbol == spec.symbol
        ]
        self._whales = sorted(
            (
                e
                for e in events
                if isinstance(e, Whale) and e.exchange == exchange and e.symbol == spec.symbol
            ),
            key=lambda w: w.at_s,
        )
        self._whale_index = 0
        windows: list[VolumeBurst | SilentGap] = [*self._bursts, *self._gaps]
        self._breakpoints = sorted({b for e in windows for b in (e.start_s, e.end_s)})
        self._next_arrival_s = self._arrival_after(0.0)

    # ---- schedule ----------------------------------------------------------------------------

    def _rate_multiplier(self, sim_s: float) -> float:
        if any(g.start_s <= sim_s < g.end_s for g in self._gaps):
            return 0.0
        return math.prod(b.multiplier for b in self._bursts if b.start_s <= sim_s < b.end_s)

    def _arrival_after(self, sim_s: float) -> float:
        """Next arrival of the inhomogeneous Poisson process after `sim_s` (inf: none)."""
        base_rate = self._spec.trades_per_s
        if base_rate <= 0:
            return math.inf
        budget = self._arrival_rng.expovariate(1.0)
        t = sim_s
        while True:
            i = bisect.bisect_right(self._breakpoints, t)
            segment_end = self._breakpoints[i] if i < len(self._breakpoints) else math.inf
            rate = base_rate * self._rate_multiplier(t)
            if rate > 0:
                if t + budget / rate < segment_end:
                    return t + budget / rate
                budget -= rate * (segment_end - t)
            if segment_end == math.inf:
                return math.inf
            t = segment_end

    # ---- trades ------------------------------------------------------------------------------

    def peek_s(self) -> float:
        if self._whale_index < len(self._whales):
            return min(self._whales[self._whale_index].at_s, self._next_arrival_s)
        return self._next_arrival_s

    def pop(self) -> Trade:
        whale = self._whales[self._whale_index] if self._whale_index < len(self._whales) else None
        if whale is not None and whale.at_s <= self._next_arrival_s:
            self._whale_index += 1
            return self._make_trade(whale.at_s, whale.quote_volume, whale.side, whale=True)
        sim_s = self._next_arrival_s
        spec = self._spec
        size_scale = math.sqrt(self._rate_multiplier(sim_s))
        quote = spec.min_quote_volume * self._mark_rng.paretovariate(spec.size_alpha)
        quote = min(quote * size_scale, spec.max_quote_volume)
        side = SIDES[self._mark_rng.getrandbits(1)]
        self._next_arrival_s = self._arrival_after(sim_s)
        return self._make_trade(sim_s, quote, side, whale=False)

    def _price_at(self, sim_s: float) -> float:
        noise = self._mark_rng.gauss(0.0, self._spec.noise_bps / 10_000)
        price = self._mid.at(sim_s) * math.exp(noise)
        for d in self._dislocations:
            if d.start_s <= sim_s < d.end_s:
                price *= 1 + d.pct / 100
        return price

    def _make_trade(self, sim_s: float, quote_volume: float, side: str, *, whale: bool) -> Trade:
        spec = self._spec
        price_units = max(1, round(self._price_at(sim_s) * 10**spec.price_decimals))
        price = Decimal(price_units).scaleb(-spec.price_decimals)
        size_units = max(1, round(quote_volume / float(price) * 10**spec.size_decimals))
        size = Decimal(size_units).scaleb(-spec.size_decimals)
        time_us = self._start_us + int(sim_s * 1_000_000)
        if self.exchange == BINANCE:
            time_us -= time_us % 1000
        trade_id = self._next_id
        self._next_id += 1
        return Trade(
            exchange=self.exchange,
            symbol=spec.symbol,
            product=self.product,
            trade_id=trade_id,
            price=format_decimal(price, self.exchange),
            size=format_decimal(size, self.exchange),
            side=side,
            time_us=time_us,
            sim_s=float(sim_s),
            whale=whale,
        )


class Market:
    """Lazily generates a scenario's trades in time order (see the module docstring)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._streams: list[_ProductStream] = []
        for spec in scenario.symbols:
            mid = _MidPrice(scenario.seed, spec)
            for exchange in EXCHANGES:
                product = spec.product(exchange)
                if product is not None:
                    self._streams.append(_ProductStream(scenario, spec, exchange, product, mid))
        self._heap = [(stream.peek_s(), i) for i, stream in enumerate(self._streams)]
        heapq.heapify(self._heap)
        self._until_s = 0.0

    @property
    def generated_until_s(self) -> float:
        """The simulated time up to which trades have been generated."""
        return self._until_s

    def products(self) -> list[tuple[str, str]]:
        """(exchange, native product) of every stream, in generation order."""
        return [(s.exchange, s.product) for s in self._streams]

    def first_trade_id(self, exchange: str, product: str) -> int:
        """The id of the product's first trade (ids are consecutive from there)."""
        for stream in self._streams:
            if stream.exchange == exchange and stream.product == product:
                return stream.first_trade_id
        raise KeyError((exchange, product))

    def advance(self, until_sim_s: float) -> list[Trade]:
        """Trades with `generated_until_s < sim_s <= until_sim_s`, ordered by time (ties: stream
        order). Going backwards returns nothing."""
        out: list[Trade] = []
        heap = self._heap
        while heap and heap[0][0] <= until_sim_s:
            _, index = heapq.heappop(heap)
            stream = self._streams[index]
            out.append(stream.pop())
            heapq.heappush(heap, (stream.peek_s(), index))
        self._until_s = max(self._until_s, until_sim_s)
        return out


def generate(scenario: Scenario, until_sim_s: float) -> list[Trade]:
    """All trades of `scenario` up to `until_sim_s` (a fresh market)."""
    return Market(scenario).advance(until_sim_s)
