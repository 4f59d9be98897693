"""The exchange parsers on real recorded frames, hand-built edge cases and fuzzed input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.events import TradeEvent
from producer.exchanges import Binance, Coinbase
from producer.exchanges.base import (
    Control,
    ExchangeErrorFrame,
    Heartbeat,
    Rejected,
    ServerShutdown,
    Skipped,
)
from producer.symbols import SymbolMap, split_binance_symbol
from tests.producer.frames import (
    FIXTURE_SYMBOLS,
    binance_trade,
    coinbase_match,
    fixture_frames,
    fixture_lines,
)

NOW = "2026-11-22T00:00:00.000000Z"
DEFAULT_MAP = SymbolMap({"BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"}})


def test_binance_2019_frames_normalize_exactly() -> None:
    binance = Binance(FIXTURE_SYMBOLS)
    first, second = (
        binance.parse(line, NOW) for line in fixture_lines("binance_trade_combined_2019.jsonl")
    )
    assert isinstance(first, TradeEvent)
    assert first.to_dict() == {
        "event_id": "binance:BNB-BTC:40756030",
        "exchange": "binance",
        "symbol": "BNB-BTC",
        "price": 0.0042699,
        "quantity": 33.82,
        "quote_volume": pytest.approx(0.0042699 * 33.82),
        "side": "buy",  # m=false: the buyer was the taker
        "timestamp": "2019-04-01T00:00:00.940Z",  # T, not E (…945)
        "ingestion_timestamp": NOW,
    }
    assert isinstance(second, TradeEvent)
    assert (second.event_id, second.side, second.timestamp) == (
        "binance:BNB-BTC:60276726",
        "sell",  # m=true: the buyer was the maker, so the taker sold
        "2019-09-01T00:00:01.034Z",
    )


def test_binance_2021_frame_and_current_shape_give_the_same_event() -> None:
    binance = Binance(FIXTURE_SYMBOLS)
    (line,) = fixture_lines("binance_trade_combined_2021.jsonl")
    old = binance.parse(line, NOW)
    frame = json.loads(line)
    del frame["data"]["b"], frame["data"]["a"]  # the format since 2024-06-18
    current = binance.parse(json.dumps(frame), NOW)
    assert old == current
    assert isinstance(current, TradeEvent)
    assert current.event_id == "binance:ETH-USDT:705291099"
    assert (current.price, current.quantity, current.side) == (4149.74, 0.4387, "sell")
    assert current.quote_volume == pytest.approx(1820.490938)
    assert current.timestamp == "2021-12-12T23:17:42.243Z"


def test_binance_raw_stream_payload_and_unknown_keys() -> None:
    binance = Binance(DEFAULT_MAP)
    frame = binance_trade(extra_key="ignored", X="also ignored")["data"]
    event = binance.parse(orjson.dumps(frame), NOW)
    assert isinstance(event, TradeEvent)
    assert event.event_id == "binance:BTC-USDT:1000"
    assert event.side == "buy"


def test_binance_control_frames_are_not_trades() -> None:
    binance = Binance(DEFAULT_MAP)
    assert binance.parse('{"result":null,"id":1}', NOW) == Control("result")
    assert binance.parse('{"e":"serverShutdown","E":1700000000000}', NOW) == ServerShutdown()
    assert binance.parse('{"error":{"code":2,"msg":"Invalid request"},"id":3}', NOW) == (
        ExchangeErrorFrame("Invalid request", "2")
    )
    for line in fixture_lines("binance_us_aggtrade_combined_2021.jsonl"):
        assert binance.parse(line, NOW) == Control("aggTrade")


def test_coinbase_matches_take_the_taker_side_confirmed_by_the_ticker() -> None:
    coinbase = Coinbase(FIXTURE_SYMBOLS)
    frames = fixture_frames("coinbase_exchange_matches_2021.jsonl")
    trades = {}
    for frame in frames:
        parsed = coinbase.parse(orjson.dumps(frame), NOW)
        if frame["type"] in ("match", "last_match"):
            assert isinstance(parsed, TradeEvent), frame
            assert parsed.side != frame["side"]  # the frame carries the maker's side
            assert parsed.timestamp == frame["time"]  # µs kept verbatim
            assert parsed.symbol == frame["product_id"]
            assert parsed.event_id == f"coinbase:{frame['product_id']}:{frame['trade_id']}"
            assert parsed.quote_volume == pytest.approx(
                float(frame["price"]) * float(frame["size"])
            )
            trades[frame["trade_id"]] = parsed
        else:
            assert parsed == Control("subscriptions")
    assert len(trades) == 107  # 10 last_match + 97 match
    tickers = fixture_frames("coinbase_exchange_ticker_2021.jsonl")
    checked = 0
    for ticker in tickers:  # a ticker's side IS the taker side
        if ticker["trade_id"] in trades:
            assert trades[ticker["trade_id"]].side == ticker["side"]
            checked += 1
    assert checked == 50


def test_coinbase_2019_match() -> None:
    (frame,) = fixture_lines("coinbase_exchange_match_2019.jsonl")
    event = Coinbase(FIXTURE_SYMBOLS).parse(frame, NOW)
    assert isinstance(event, TradeEvent)
    assert event.to_dict() == {
        "event_id": "coinbase:ETC-GBP:216544",
        "exchange": "coinbase",
        "symbol": "ETC-GBP",
        "price": 4.978,
        "quantity": 0.97133855,
        "quote_volume": pytest.approx(4.978 * 0.97133855),
        "side": "sell",  # maker bought
        "timestamp": "2019-08-01T00:00:03.816000Z",
        "ingestion_timestamp": NOW,
    }


def test_coinbase_control_heartbeat_and_error() -> None:
    coinbase = Coinbase(DEFAULT_MAP)
    heartbeat = {
        "type": "heartbeat",
        "sequence": 90,
        "last_trade_id": 20,
        "product_id": "BTC-USD",
        "time": "2014-11-07T08:19:28.464459Z",
    }
    assert coinbase.parse(orjson.dumps(heartbeat), NOW) == Heartbeat("BTC-USD", 20)
    error = {
        "type": "error",
        "message": "Failed to subscribe",
        "reason": "BTC-XYZ is not a valid product",
    }
    assert coinbase.parse(orjson.dumps(error), NOW) == ExchangeErrorFrame(
        "Failed to subscribe", "BTC-XYZ is not a valid product"
    )
    assert coinbase.parse('{"type":"ticker","product_id":"BTC-USD"}', NOW) == Control("ticker")
    assert isinstance(
        coinbase.parse(orjson.dumps(coinbase_match(type="last_match")), NOW), TradeEvent
    )


def test_products_outside_the_map_are_skipped_unless_all_products() -> None:
    match = orjson.dumps(coinbase_match(product_id="ETH-EUR"))
    assert Coinbase(DEFAULT_MAP).parse(match, NOW) == Skipped("unmapped_product")
    derived = Coinbase(DEFAULT_MAP, all_products=True).parse(match, NOW)
    assert isinstance(derived, TradeEvent)
    assert derived.symbol == "ETH-EUR"
    frame = orjson.dumps(binance_trade(s="SOLFDUSD"))
    assert Binance(DEFAULT_MAP).parse(frame, NOW) == Skipped("unmapped_product")
    event = Binance(DEFAULT_MAP, all_products=True).parse(frame, NOW)
    assert isinstance(event, TradeEvent)
    assert event.symbol == "SOL-FDUSD"


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("BTCUSDT", "BTC-USDT"),
        ("BNBBTC", "BNB-BTC"),
        ("ETHFDUSD", "ETH-FDUSD"),
        ("BTCTRY", "BTC-TRY"),
        ("OMGBUSD", "OMG-BUSD"),
        ("XYZ", None),
        ("USDT", None),
    ],
)
def test_binance_symbols_split_at_a_known_quote_asset(native: str, canonical: str | None) -> None:
    assert split_binance_symbol(native) == canonical


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"p": "abc"}, "bad_price"),
        ({"p": "0"}, "bad_price"),
        ({"p": "NaN"}, "bad_price"),
        ({"q": "-1"}, "bad_quantity"),
        ({"q": 1.5}, "bad_quantity"),  # numbers must be decimal strings
        ({"t": "12"}, "bad_trade_id"),
        ({"t": True}, "bad_trade_id"),
        ({"T": None}, "bad_trade_time"),
        ({"m": "false"}, "bad_maker_flag"),
        ({"s": None}, "missing_symbol"),
    ],
)
def test_binance_bad_trade_fields_are_rejected_with_a_reason(
    change: dict[str, object], reason: str
) -> None:
    parsed = Binance(DEFAULT_MAP).parse(orjson.dumps(binance_trade(**change)), NOW)
    assert isinstance(parsed, Rejected)
    assert parsed.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": "-3"}, "bad_price"),
        ({"size": ""}, "bad_quantity"),
        ({"side": "up"}, "bad_side"),
        ({"time": "yesterday"}, "bad_trade_time"),
        ({"time": "2023-11-14T22:13:20.123456"}, "bad_trade_time"),  # not UTC-marked
        ({"trade_id": None}, "bad_trade_id"),
        ({"product_id": 7}, "missing_symbol"),
    ],
)
def test_coinbase_bad_trade_fields_are_rejected_with_a_reason(
    change: dict[str, object], reason: str
) -> None:
    parsed = Coinbase(DEFAULT_MAP).parse(orjson.dumps(coinbase_match(**change)), NOW)
    assert isinstance(parsed, Rejected)
    assert parsed.reason == reason


@pytest.mark.parametrize("frame", [b"", b"{", b"[1,2]", b"null", b"\xff\xfe", b'"text"'])
def test_garbage_is_rejected_by_both_parsers(frame: bytes) -> None:
    for exchange in (Binance(DEFAULT_MAP), Coinbase(DEFAULT_MAP)):
        assert isinstance(exchange.parse(frame, NOW), Rejected)


RESULT_TYPES = (
    TradeEvent,
    Heartbeat,
    Control,
    ServerShutdown,
    ExchangeErrorFrame,
    Skipped,
    Rejected,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
# Values at the edges where the typed path (msgspec) and the generic path (orjson) could differ:
# integer widths, bool-vs-int, numeric strings Python's `float` reads, non-ASCII, empty strings.
edge_values = st.sampled_from(
    [
        0,
        -1,
        2**63 - 1,
        2**63,
        2**64 - 1,
        2**64,
        -(2**63),
        -(2**63) - 1,
        1.0,
        1e300,
        True,
        False,
        "",
        "0",
        "1e400",
        "inf",
        "-inf",
        "nan",
        " 1.5 ",
        "1_000",
        "0x10",
        "١٢٣",
        "trade",
        "match",
        "heartbeat",
        "last_match",
        "buy",
        "sell",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20.123456+00:00Z",
        "BTCUSDT",
        "BTC-USD",
        "btc-usd",
    ]
)
mutations = json_values | edge_values


def coinbase_heartbeat() -> dict[str, Any]:
    return {
        "type": "heartbeat",
        "sequence": 90,
        "last_trade_id": 20,
        "product_id": "BTC-USD",
        "time": "2023-11-14T22:13:20.123456Z",
    }


def both_paths_agree(exchange: Binance | Coinbase, frame: bytes | str) -> object:
    """The typed fast path and the generic path give the very same result for `frame`."""
    parsed = exchange.parse(frame, NOW)
    assert parsed == exchange.parse_generic(frame, NOW), frame
    return parsed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_no_bytes_make_a_parser_raise(frame: bytes) -> None:
    for exchange in (Binance(DEFAULT_MAP), Coinbase(DEFAULT_MAP)):
        assert isinstance(both_paths_agree(exchange, frame), RESULT_TYPES)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["e", "s", "t", "p", "q", "T", "m", "stream", "data", "result", "id"]),
    mutations,
    st.booleans(),
)
def test_fuzz_binance_mutated_fields(key: str, value: object, delete: bool) -> None:
    frame = binance_trade()
    target = frame if key in ("stream", "data") else frame["data"]
    if delete:
        target.pop(key, None)
    else:
        target[key] = value
    parsed = both_paths_agree(Binance(DEFAULT_MAP, all_products=True), json.dumps(frame))
    assert isinstance(parsed, RESULT_TYPES)
    if isinstance(parsed, TradeEvent):  # whatever got through is a valid event
        assert parsed.price > 0
        assert parsed.quantity > 0
        assert parsed.side in ("buy", "sell")


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        ["type", "trade_id", "side", "size", "price", "product_id", "time", "last_trade_id"]
    ),
    mutations,
    st.sampled_from([coinbase_match, coinbase_heartbeat]),
    st.booleans(),
)
def test_fuzz_coinbase_mutated_fields(
    key: str, value: object, make: Callable[[], dict[str, Any]], delete: bool
) -> None:
    frame = make()
    if delete:
        frame.pop(key, None)
    else:
        frame[key] = value
    parsed = both_paths_agree(Coinbase(DEFAULT_MAP, all_products=True), json.dumps(frame))
    assert isinstance(parsed, RESULT_TYPES)
    if isinstance(parsed, TradeEvent):
        assert parsed.price > 0
        assert parsed.quantity > 0
        assert parsed.side in ("buy", "sell")


def test_rest_pages_parse_to_ascending_trades() -> None:
    binance_page = orjson.dumps(
        [
            {
                "id": 11,
                "price": "2.0",
                "qty": "3.0",
                "quoteQty": "6.0",
                "time": 1700000000001,
                "isBuyerMaker": True,
                "isBestMatch": True,
            },
            {
                "id": 10,
                "price": "1.0",
                "qty": "1.0",
                "quoteQty": "1.0",
                "time": 1700000000000,
                "isBuyerMaker": False,
                "isBestMatch": True,
            },
        ]
    )
    trades = Binance(DEFAULT_MAP).parse_rest_trades("BTCUSDT", binance_page, NOW)
    assert [(t.trade_id, t.side, t.timestamp) for t in trades] == [
        (10, "buy", "2023-11-14T22:13:20.000Z"),
        (11, "sell", "2023-11-14T22:13:20.001Z"),
    ]
    coinbase_page = orjson.dumps(
        [
            {
                "time": "2023-11-14T22:13:21.000001Z",
                "trade_id": 8,
                "price": "5",
                "size": "1",
                "side": "buy",
            },
            {
                "time": "2023-11-14T22:13:20.000001Z",
                "trade_id": 7,
                "price": "5",
                "size": "2",
                "side": "sell",
            },
        ]
    )
    trades = Coinbase(DEFAULT_MAP).parse_rest_trades("BTC-USD", coinbase_page, NOW)
    assert [(t.event_id, t.side) for t in trades] == [
        ("coinbase:BTC-USDT:7", "buy"),
        ("coinbase:BTC-USDT:8", "sell"),
    ]
    with pytest.raises(ValueError, match="malformed"):
        Coinbase(DEFAULT_MAP).parse_rest_trades("BTC-USD", b'[{"trade_id": 1}]', NOW)


@pytest.mark.parametrize(
    "frame",
    [
        # A repeated key: both paths take the last one.
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"t":2,"p":"1",'
        '"q":"1","T":1700000000000,"m":true}}',
        # A trade frame outside a combined stream: the generic path reads it.
        '{"e":"trade","s":"BTCUSDT","t":3,"p":"1","q":"1","T":1700000000000,"m":false}',
        # Escapes and non-ASCII in strings.
        '{"stream":"x","data":{"e":"trade","s":"BTC\\u0055SDT","t":4,"p":"1","q":"1",'
        '"T":1700000000000,"m":true}}',
        '{"stream":"x","data":{"e":"trade","s":"BTCUSDT\u00e9","t":5,"p":"1","q":"1",'
        '"T":1700000000000,"m":true}}',
        b'{"stream":"x","data":{"e":"trade","s":"BTCUSDT","t":6,"p":"\xff","q":"1"}}',
        # Nested deeper than either decoder goes.
        '{"stream":"x","data":' + "[" * 100_000,
        '{"stream":"x","data":{"e":"trade","x":' + "[" * 100_000,
    ],
)
def test_binance_edge_frames_agree_on_both_paths(frame: str | bytes) -> None:
    both_paths_agree(Binance(DEFAULT_MAP, all_products=True), frame)


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000,
        '{"type":"match","x":' + "[" * 100_000,
        '{"type":"heartbeat","product_id":' + "[" * 100_000,
    ],
)
def test_coinbase_edge_frames_agree_on_both_paths(frame: str) -> None:
    parsed = both_paths_agree(Coinbase(DEFAULT_MAP, all_products=True), frame)
    assert isinstance(parsed, Rejected)


def test_the_typed_path_reads_every_recorded_trade_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every recorded trade frame is read by the typed path (none falls back to the generic one),
    and every other frame agrees on both paths: a change of shape on the exchanges' side shows
    here, not as a silent slowdown."""
    recorded = [
        (Binance, "binance_trade_combined_2019.jsonl"),
        (Binance, "binance_trade_combined_2021.jsonl"),
        (Binance, "binance_us_aggtrade_combined_2021.jsonl"),
        (Coinbase, "coinbase_exchange_match_2019.jsonl"),
        (Coinbase, "coinbase_exchange_matches_2021.jsonl"),
        (Coinbase, "coinbase_exchange_ticker_2021.jsonl"),
    ]
    trades = 0
    for kind, name in recorded:
        for line in fixture_lines(name):
            exchange = kind(FIXTURE_SYMBOLS, all_products=True)
            generic = both_paths_agree(exchange, line)
            if not isinstance(generic, TradeEvent | Heartbeat):
                continue

            def no_fallback(frame: bytes | str, ingestion_timestamp: str) -> object:
                raise AssertionError(f"the typed path refused a recorded frame: {frame!r}")

            monkeypatch.setattr(exchange, "parse_generic", no_fallback)
            assert exchange.parse(line, NOW) == generic
            trades += 1
    assert trades >= 40
