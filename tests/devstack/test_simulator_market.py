"""The simulator's market generator: pure, deterministic, scripted."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from devstack.simulator.market import (
    Dislocation,
    DropConnections,
    GoSilent,
    Market,
    Rest429,
    Scenario,
    SilentGap,
    SymbolSpec,
    Trade,
    VolumeBurst,
    Whale,
    generate,
)

ETH = SymbolSpec("ETH-USDT", "ETHUSDT", "ETH-USD", base_price=3000.0, trades_per_s=4.0)
BINANCE_DECIMAL = re.compile(r"^\d+\.\d{8}$")
COINBASE_DECIMAL = re.compile(r"^\d+(\.\d*[1-9])?$")  # natural: no trailing zeros


def scenario(**kwargs: object) -> Scenario:
    defaults: dict[str, object] = {"seed": 11, "symbols": (SymbolSpec(), ETH)}
    defaults.update(kwargs)
    return Scenario(**defaults)  # type: ignore[arg-type]


def in_window(trades: list[Trade], start_s: float, end_s: float, **match: str) -> list[Trade]:
    return [
        t
        for t in trades
        if start_s <= t.sim_s < end_s and all(getattr(t, k) == v for k, v in match.items())
    ]


def test_same_seed_same_trades_however_chunked() -> None:
    sc = scenario(events=(VolumeBurst(20, 10, 4.0), Whale(33.3, "coinbase", "ETH-USDT", 2e5)))
    whole = generate(sc, 120)
    market = Market(sc)
    chunked: list[Trade] = []
    for until in (0.0, 0.001, 7.5, 7.5, 33.3, 60, 119.99, 120):
        chunked += market.advance(until)
    assert len(whole) > 1000
    assert chunked == whole
    assert generate(sc, 120) == whole
    assert generate(scenario(seed=12), 120) != whole
    assert [t.sim_s for t in whole] == sorted(t.sim_s for t in whole)
    assert market.advance(50) == []  # going backwards yields nothing


def test_ids_are_consecutive_per_product_and_formats_are_native() -> None:
    trades = generate(scenario(), 300)
    by_product: dict[tuple[str, str], list[Trade]] = defaultdict(list)
    for t in trades:
        by_product[(t.exchange, t.product)].append(t)
    assert set(by_product) == {
        ("binance", "BTCUSDT"),
        ("binance", "ETHUSDT"),
        ("coinbase", "BTC-USD"),
        ("coinbase", "ETH-USD"),
    }
    market = Market(scenario())
    for (exchange, product), series in by_product.items():
        ids = [t.trade_id for t in series]
        first = market.first_trade_id(exchange, product)
        assert first >= 100_000
        assert ids == list(range(first, first + len(ids)))
    for t in trades:
        assert t.side in ("buy", "sell")
        assert t.maker_side != t.side
        if t.exchange == "binance":
            assert BINANCE_DECIMAL.match(t.price), t
            assert BINANCE_DECIMAL.match(t.size), t
            assert t.time_us % 1000 == 0
            assert re.fullmatch(r"2026-01-01T00:0\d:\d\d\.\d{3}Z", t.timestamp)
        else:
            assert COINBASE_DECIMAL.match(t.price), t
            assert COINBASE_DECIMAL.match(t.size), t
            assert re.fullmatch(r"2026-01-01T00:0\d:\d\d\.\d{6}Z", t.timestamp)
        assert Decimal(t.size) > 0
        assert t.quote_volume <= 90_000 * 1.001  # natural trades stay below the whale threshold
    assert trades[0].event_id == f"{trades[0].exchange}:{trades[0].symbol}:{trades[0].trade_id}"


def test_both_exchanges_quote_the_same_price() -> None:
    trades = generate(scenario(), 600)
    for symbol in ("BTC-USDT", "ETH-USDT"):
        for start in (0, 300):
            b = statistics.fmean(
                float(t.price)
                for t in in_window(trades, start, start + 60, symbol=symbol)
                if t.exchange == "binance"
            )
            c = statistics.fmean(
                float(t.price)
                for t in in_window(trades, start, start + 60, symbol=symbol)
                if t.exchange == "coinbase"
            )
            assert abs(b - c) / c < 0.001


def test_scripted_whale_has_the_requested_quote_volume() -> None:
    whale = Whale(
        at_s=42.5, exchange="binance", symbol="BTC-USDT", quote_volume=750_000, side="sell"
    )
    trades = generate(scenario(events=(whale,)), 60)
    whales = [t for t in trades if t.whale]
    assert len(whales) == 1
    (trade,) = whales
    assert (trade.exchange, trade.product, trade.side, trade.sim_s) == (
        "binance",
        "BTCUSDT",
        "sell",
        42.5,
    )
    assert trade.quote_volume == pytest.approx(750_000, rel=1e-5)
    assert trade.time_us == 1767225600000000 + 42_500_000
    # The rest of the market is unchanged by the whale (arrivals draw from their own generator).
    plain = generate(scenario(), 60)
    assert [t.sim_s for t in trades if not t.whale] == [t.sim_s for t in plain]


def test_burst_gap_and_dislocation_shape_the_market() -> None:
    sc = scenario(
        events=(
            VolumeBurst(100, 60, 5.0, exchange="binance", symbol="BTC-USDT"),
            SilentGap(200, 30, exchange="coinbase"),
            Dislocation(300, 60, "coinbase", "BTC-USDT", pct=2.0),
        )
    )
    trades = generate(sc, 400)
    btc_b = {"exchange": "binance", "symbol": "BTC-USDT"}
    base = len(in_window(trades, 0, 60, **btc_b))
    burst = len(in_window(trades, 100, 160, **btc_b))
    assert 200 < base < 400  # 5 trades/s
    assert burst > 3.5 * base
    base_volume = sum(t.quote_volume for t in in_window(trades, 0, 60, **btc_b))
    burst_volume = sum(t.quote_volume for t in in_window(trades, 100, 160, **btc_b))
    assert burst_volume > 5 * base_volume
    assert in_window(trades, 200, 230, exchange="coinbase") == []
    assert len(in_window(trades, 200, 230, exchange="binance")) > 100
    b = statistics.fmean(float(t.price) for t in in_window(trades, 300, 360, **btc_b))
    c = statistics.fmean(
        float(t.price) for t in in_window(trades, 300, 360, exchange="coinbase", symbol="BTC-USDT")
    )
    assert (c - b) / b * 100 == pytest.approx(2.0, abs=0.1)


def test_scenario_json_round_trip(tmp_path: Path) -> None:
    sc = scenario(
        duration_s=5400,
        events=(
            Whale(600, "binance", "BTC-USDT", 500_000, "buy"),
            VolumeBurst(1200, 120, 6.0, exchange=None, symbol="ETH-USDT"),
            Dislocation(1800, 90, "coinbase", "BTC-USDT", 0.8),
            SilentGap(2400, 20),
        ),
        faults=(DropConnections(500), GoSilent(2000, 3.0, "coinbase"), Rest429(5, 2, "binance")),
    )
    path = tmp_path / "scenario.json"
    sc.dump(path)
    assert Scenario.load(path) == sc
    data = sc.to_dict()
    assert data["start"] == "2026-01-01T00:00:00Z"
    assert data["events"][0] == {
        "type": "Whale",
        "at_s": 600,
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "quote_volume": 500_000,
        "side": "buy",
    }
    minimal = Scenario.from_dict({"seed": 3, "events": [data["events"][0]]})
    assert minimal.symbols == (SymbolSpec(),)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"events": [{"type": "Meteor", "at_s": 1}]}, "unknown type 'Meteor'"),
        (
            {
                "events": [
                    {
                        "type": "Whale",
                        "at_s": 1,
                        "exchange": "kraken",
                        "symbol": "BTC-USDT",
                        "quote_volume": 1,
                    }
                ]
            },
            "exchange must be one of",
        ),
        (
            {
                "events": [
                    {
                        "type": "Whale",
                        "at_s": 1,
                        "exchange": "binance",
                        "symbol": "DOGE-USDT",
                        "quote_volume": 1,
                    }
                ]
            },
            "unknown symbol 'DOGE-USDT'",
        ),
        ({"faults": [{"type": "DropConnections", "every_n_trades": 5, "oops": 1}]}, "oops"),
        ({"start": "2026-01-01T00:00:00"}, "timezone-aware"),
        (
            {
                "events": [
                    {"type": "SilentGap", "start_s": 0, "duration_s": 10},
                    {
                        "type": "Whale",
                        "at_s": 5,
                        "exchange": "binance",
                        "symbol": "BTC-USDT",
                        "quote_volume": 1e6,
                    },
                ]
            },
            "falls inside",
        ),
    ],
)
def test_invalid_scenarios_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Scenario.from_dict(data)
