"""Builders for exchange frames and symbol maps used across producer tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from producer.symbols import SymbolMap

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "exchanges"

# Every product the recorded fixtures contain, mapped to its canonical symbol.
FIXTURE_SYMBOLS = SymbolMap(
    {
        "BNB-BTC": {"binance": "BNBBTC"},
        "ETH-USDT": {"binance": "ETHUSDT"},
        "BAND-BTC": {"coinbase": "BAND-BTC"},
        "BAND-GBP": {"coinbase": "BAND-GBP"},
        "CRV-EUR": {"coinbase": "CRV-EUR"},
        "DASH-BTC": {"coinbase": "DASH-BTC"},
        "NMR-EUR": {"coinbase": "NMR-EUR"},
        "NU-GBP": {"coinbase": "NU-GBP"},
        "SKL-BTC": {"coinbase": "SKL-BTC"},
        "SKL-GBP": {"coinbase": "SKL-GBP"},
        "SKL-USD": {"coinbase": "SKL-USD"},
        "YFI-BTC": {"coinbase": "YFI-BTC"},
        "ETC-GBP": {"coinbase": "ETC-GBP"},
    }
)


def fixture_lines(name: str) -> list[str]:
    return [line for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def fixture_frames(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in fixture_lines(name)]


def binance_trade(**overrides: Any) -> dict[str, Any]:
    """A current-format combined-stream trade frame (fields e,E,s,t,p,q,T,m,M)."""
    data: dict[str, Any] = {
        "e": "trade",
        "E": 1700000000123,
        "s": "BTCUSDT",
        "t": 1000,
        "p": "60000.10000000",
        "q": "0.50000000",
        "T": 1700000000120,
        "m": False,
        "M": True,
    }
    data.update(overrides)
    return {"stream": "btcusdt@trade", "data": data}


def coinbase_match(**overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "match",
        "trade_id": 2000,
        "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
        "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
        "side": "sell",
        "size": "0.25",
        "price": "60010.5",
        "product_id": "BTC-USD",
        "sequence": 50,
        "time": "2023-11-14T22:13:20.123456Z",
    }
    frame.update(overrides)
    return frame
