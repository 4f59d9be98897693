"""Local stand-in for Binance and Coinbase: a seeded, scripted market over real sockets.

`market` generates the trades (pure), `binance`/`coinbase` speak each exchange's WebSocket and
REST protocol, `server.Simulator` runs both on 127.0.0.1; `python -m devstack.simulator` runs it
from the command line.
"""

from devstack.simulator.binance import BinanceConfig, BinanceServer
from devstack.simulator.coinbase import CoinbaseConfig, CoinbaseServer
from devstack.simulator.feed import ConnectionStats, ExchangeCounters
from devstack.simulator.market import (
    BINANCE,
    COINBASE,
    EXCHANGES,
    Dislocation,
    DropConnections,
    GoSilent,
    Malformed,
    Market,
    Rest429,
    Scenario,
    ServerShutdown,
    SilentGap,
    SkipTradeIds,
    SymbolSpec,
    Trade,
    VolumeBurst,
    Whale,
    generate,
)
from devstack.simulator.server import Simulator, SimulatorThread, SimulatorUrls

__all__ = [
    "BINANCE",
    "COINBASE",
    "EXCHANGES",
    "BinanceConfig",
    "BinanceServer",
    "CoinbaseConfig",
    "CoinbaseServer",
    "ConnectionStats",
    "Dislocation",
    "DropConnections",
    "ExchangeCounters",
    "GoSilent",
    "Malformed",
    "Market",
    "Rest429",
    "Scenario",
    "ServerShutdown",
    "SilentGap",
    "Simulator",
    "SimulatorThread",
    "SimulatorUrls",
    "SkipTradeIds",
    "SymbolSpec",
    "Trade",
    "VolumeBurst",
    "Whale",
    "generate",
]
