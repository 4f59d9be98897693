"""The shapes of the frames that carry trades, for a typed decode in C (msgspec).

`msgspec` reads a well-formed trade frame straight into the few fields the unified event needs,
validating types and ranges as it goes, about twice as fast as `orjson.loads` builds the dicts
(other keys are skipped, not built). A frame it does not accept whole — a control frame, a
malformed trade — raises, and the exchange's generic path (`orjson.loads`, then checks key by
key) handles it and names exactly what is wrong. So the typed shapes may be stricter than the
generic checks, never looser: every frame they accept, the generic path accepts with the same
values (tests/producer/test_parsers.py checks both paths against each other).

(A module of its own: the parsers may be compiled, and msgspec's `Struct` classes must stay
ordinary Python classes.)
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from producer.events import MAX_EPOCH_MS

# Integers as `orjson` reads them: a JSON integer beyond 64 bits is a float there (which the
# generic checks reject), so the typed shapes take nothing larger.
_INT64 = msgspec.Meta(ge=-(2**63), le=2**63 - 1)
TradeId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
EpochMs = Annotated[int, msgspec.Meta(gt=0, le=MAX_EPOCH_MS)]
Name = Annotated[str, msgspec.Meta(min_length=1)]


class BinanceTrade(msgspec.Struct):
    """A Binance `trade` event: symbol, trade id, price, quantity, trade time, buyer-is-maker.
    (`e` is a field, not a struct tag: a lone tagged struct would accept a frame without it.)"""

    e: Literal["trade"]
    s: Name
    t: TradeId
    p: str
    q: str
    T: EpochMs
    m: bool


class BinanceTradeFrame(msgspec.Struct):
    """A combined-stream frame (`{"stream": "btcusdt@trade", "data": {...}}`) carrying a trade."""

    stream: str
    data: BinanceTrade


class CoinbaseMatch(msgspec.Struct, tag_field="type", tag="match"):
    """A Coinbase `match`: product, trade id, the maker's side, time, price, size."""

    product_id: Name
    trade_id: TradeId
    side: str
    time: str
    price: str
    size: str


class CoinbaseLastMatch(CoinbaseMatch, tag="last_match"):
    """The latest trade, sent once on subscribe: a match like any other."""


class CoinbaseHeartbeat(msgspec.Struct, tag_field="type", tag="heartbeat"):
    """A product's latest trade id, once a second."""

    product_id: str
    last_trade_id: Annotated[int, _INT64]


decode_binance_trade = msgspec.json.Decoder(BinanceTradeFrame).decode
decode_coinbase_feed = msgspec.json.Decoder(
    CoinbaseMatch | CoinbaseLastMatch | CoinbaseHeartbeat
).decode
