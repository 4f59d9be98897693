"""Exchange protocols as pure modules: frame parsing, request building, exchange facts.

Nothing here touches a socket; `producer.connectors` does the I/O around these.
"""

from producer.exchanges.base import Exchange
from producer.exchanges.binance import Binance
from producer.exchanges.coinbase import Coinbase

EXCHANGE_CLASSES: dict[str, type[Exchange]] = {"binance": Binance, "coinbase": Coinbase}

__all__ = ["EXCHANGE_CLASSES", "Binance", "Coinbase", "Exchange"]
