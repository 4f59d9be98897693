"""The benchmark's market: exchange frames as the exchanges send them, made by the simulator.

One seeded `Scenario` gives every figure the same trades: four symbols on Binance, two of them
also on Coinbase (about two Binance trades for each Coinbase one, as on the real venues), a whale
every minute, a volume burst and a dislocation. The frames are built by the simulator's own frame
builders (`devstack.simulator.binance.trade_frame`, `coinbase.match_message`), i.e. the exact
bytes the simulated exchanges put on their WebSockets, in time order, with the Coinbase
`heartbeat` frame every product sends once a second.

The peer (cryptofeed) speaks other dialects of the same exchanges: Binance `aggTrade` and
Coinbase Advanced Trade `market_trades`. `peer_frame` renders the same trade in its dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from devstack.simulator import coinbase as coinbase_frames
from devstack.simulator.binance import event_time_ms, trade_frame
from devstack.simulator.market import (
    BINANCE,
    COINBASE,
    Dislocation,
    Market,
    Scenario,
    SymbolSpec,
    Trade,
    VolumeBurst,
    Whale,
    epoch_us,
)

SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTC-USDT", "BTCUSDT", "BTC-USD", base_price=60_000.0, trades_per_s=10.0),
    SymbolSpec(
        "ETH-USDT", "ETHUSDT", "ETH-USD", base_price=3_000.0, trades_per_s=10.0, size_decimals=4
    ),
    SymbolSpec("SOL-USDT", "SOLUSDT", None, base_price=150.0, trades_per_s=10.0, size_decimals=3),
    SymbolSpec("BNB-USDT", "BNBUSDT", None, base_price=600.0, trades_per_s=10.0, size_decimals=3),
)
# Simulated trades per second over every product (4 Binance + 2 Coinbase products at 10/s).
TRADES_PER_SIM_S = 60.0
WHALE_EVERY_S = 60.0
WHALE_QUOTE_VOLUME = 250_000.0
START = datetime(2026, 1, 1, tzinfo=UTC)

if TYPE_CHECKING:
    from spark_jobs.common.settings import JobSettings


def job_settings(
    workdir: Path, stream: dict[str, Any], alerts_table: str, catalog: str
) -> JobSettings:
    """The shipped configuration (config/pipeline.yaml) for the benchmark market: every path in
    `workdir`, the trigger as fast as it goes, CloudWatch off (one session runs every job)."""
    from spark_jobs.common.settings import load_job_settings

    return load_job_settings(
        symbols=symbol_map(),
        stream=stream,
        spark={"conf": {"spark.ui.showConsoleProgress": "false"}},
        streaming={"trigger_interval_s": 0, "checkpoint_root": str(workdir / "checkpoints")},
        raw_zone=str(workdir / "raw"),
        tables={
            "catalog": catalog,
            "namespace": "crypto_pulse",
            "warehouse": str(workdir / "warehouse"),
        },
        alerts={"dynamodb_table": alerts_table},
        metrics={"cloudwatch": False},
    )


def symbol_map() -> dict[str, dict[str, str]]:
    """The producer's/jobs' `symbols` setting for the benchmark market."""
    return {
        spec.symbol: {
            exchange: product
            for exchange in (BINANCE, COINBASE)
            if (product := spec.product(exchange)) is not None
        }
        for spec in SYMBOLS
    }


def scenario(duration_s: float, start: datetime = START) -> Scenario:
    """The benchmark market over `duration_s` simulated seconds."""
    whales = [
        Whale(
            at_s=at_s,
            exchange=(BINANCE, COINBASE)[index % 2],
            symbol="BTC-USDT",
            quote_volume=WHALE_QUOTE_VOLUME,
        )
        for index, at_s in enumerate(_steps(WHALE_EVERY_S / 2, duration_s, WHALE_EVERY_S))
    ]
    events: list[Whale | VolumeBurst | Dislocation] = [*whales]
    if duration_s >= 900:  # after the volume detector's 10 baseline minutes
        burst_s = 0.6 * duration_s
        events.append(VolumeBurst(start_s=burst_s, duration_s=60.0, multiplier=3.0))
        events.append(
            Dislocation(
                start_s=burst_s - 180.0,
                duration_s=60.0,
                exchange=COINBASE,
                symbol="ETH-USDT",
                pct=1.0,
            )
        )
    return Scenario(seed=11, start=start, symbols=SYMBOLS, events=events, duration_s=duration_s)


def _steps(first: float, end: float, every: float) -> list[float]:
    count = max(0, int((end - first) // every) + 1)
    return [first + i * every for i in range(count)]


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame as received: which connector gets it, its bytes, and the trade it
    carries (None for a heartbeat)."""

    exchange: str
    data: bytes
    trade: Trade | None


def trades(count: int) -> list[Trade]:
    """The first `count` trades of the benchmark market, in time order."""
    duration_s = count / TRADES_PER_SIM_S * 1.2 + 60
    market = Market(scenario(duration_s))
    out = market.advance(duration_s)
    if len(out) < count:
        raise RuntimeError(f"the market made {len(out)} trades in {duration_s} s, not {count}")
    return out[:count]


def exchange_frames(market_trades: list[Trade]) -> list[Frame]:
    """The frames the simulated exchanges send for these trades: combined-stream `@trade` frames
    (Binance), `match` frames (Coinbase), and a Coinbase `heartbeat` per product per second."""
    frames: list[Frame] = []
    last_id: dict[str, int] = {}
    next_heartbeat_us: int | None = None
    for trade in market_trades:
        if next_heartbeat_us is None:
            next_heartbeat_us = trade.time_us - trade.time_us % 1_000_000 + 1_000_000
        while trade.time_us >= next_heartbeat_us:
            for product, trade_id in last_id.items():
                message = coinbase_frames.heartbeat_message(product, trade_id, next_heartbeat_us)
                frames.append(Frame(COINBASE, orjson.dumps(message), None))
            next_heartbeat_us += 1_000_000
        if trade.exchange == BINANCE:
            frames.append(Frame(BINANCE, trade_frame(trade, combined=True).encode(), trade))
        else:
            frames.append(
                Frame(COINBASE, orjson.dumps(coinbase_frames.match_message(trade)), trade)
            )
            last_id[trade.product] = trade.trade_id
    return frames


def peer_frame(trade: Trade) -> bytes:
    """The same trade in the dialect cryptofeed 2.4 subscribes to: a Binance combined-stream
    `aggTrade` (one trade per aggregate) or a Coinbase Advanced Trade `market_trades` update."""
    if trade.exchange == BINANCE:
        data = {
            "e": "aggTrade",
            "E": event_time_ms(trade),
            "s": trade.product,
            "a": trade.trade_id,
            "p": trade.price,
            "q": trade.size,
            "f": trade.trade_id,
            "l": trade.trade_id,
            "T": trade.time_ms,
            "m": trade.side == "sell",
            "M": True,
        }
        return orjson.dumps({"stream": f"{trade.product.lower()}@aggTrade", "data": data})
    update = {
        "trade_id": str(trade.trade_id),
        "product_id": trade.product,
        "price": trade.price,
        "size": trade.size,
        "side": trade.side.upper(),
        "time": trade.timestamp,
    }
    message = {
        "channel": "market_trades",
        "client_id": "",
        "timestamp": trade.timestamp,
        "sequence_num": coinbase_frames.match_sequence(trade.product, trade.trade_id),
        "events": [{"type": "update", "trades": [update]}],
    }
    return orjson.dumps(message)


def start_us() -> int:
    return epoch_us(START)
