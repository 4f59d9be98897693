"""The unified event's building blocks: the producer clock, the event, the lag gauge."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer import events
from producer.events import MAX_EPOCH_MS, TradeEvent, iso_from_ms, utc_now_iso
from producer.metrics import ExchangeCounters, ProducerCounters


@pytest.mark.parametrize(
    "nanos",
    [
        1_767_225_600_000_000_000,  # a whole second
        1_767_225_600_123_456_789,  # truncated, not rounded, to the microsecond
        1_767_225_659_999_999_999,  # the last microsecond of a minute
        951_782_400_000_001_000,  # 2000-02-29
    ],
)
def test_the_clock_formats_exactly_as_datetime_strftime(
    nanos: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events.time, "time_ns", lambda: nanos)
    seconds, rest = divmod(nanos, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    assert utc_now_iso() == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_clock_is_right_when_seconds_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The formatted second and millisecond are cached: moving back and forth between them
    (threads, a clock step) still gives each moment its own."""
    for nanos in (
        1_767_225_600_5 * 10**8,
        1_767_225_601_000_000_000,
        1_767_225_600_999_999_000,
        1_767_225_600_999_000_000,  # the same millisecond, another microsecond
        1_767_225_600_998_999_000,  # the millisecond before
        1_767_225_601_999_000_000,  # the same millisecond of another second
    ):
        monkeypatch.setattr(events.time, "time_ns", lambda nanos=nanos: nanos)
        seconds, rest = divmod(nanos, 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
        assert utc_now_iso() == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.lists(st.integers(min_value=1, max_value=MAX_EPOCH_MS), min_size=1, max_size=5))
def test_trade_times_format_exactly_as_datetime(all_ms: list[int]) -> None:
    for ms in all_ms:
        moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        assert iso_from_ms(ms) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(
    st.floats(min_value=1e-12, max_value=1e12, allow_nan=False),
    st.floats(min_value=1e-12, max_value=1e12, allow_nan=False),
    st.text(max_size=8),
)
def test_the_record_is_the_dict_as_json(price: float, quantity: float, symbol: str) -> None:
    event = trade(price=price, quantity=quantity, symbol=symbol)
    assert orjson.loads(event.to_json()) == event.to_dict()


def trade(**overrides: object) -> TradeEvent:
    values: dict[str, object] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "trade_id": 7,
        "price": 60_000.5,
        "quantity": 0.25,
        "side": "buy",
        "timestamp": "2026-01-01T00:00:00.120Z",
        "ingestion_timestamp": "2026-01-01T00:00:00.150500Z",
    }
    values.update(overrides)
    return TradeEvent(**values)  # type: ignore[arg-type]


def test_an_event_is_immutable_and_serializes_the_wire_contract() -> None:
    event = trade()
    with pytest.raises(AttributeError):
        event.price = 1.0  # type: ignore[misc]
    assert not dataclasses.is_dataclass(event)
    assert trade() == event
    assert hash(trade()) == hash(event)
    assert list(orjson.loads(event.to_json())) == [
        "event_id",
        "exchange",
        "symbol",
        "price",
        "quantity",
        "quote_volume",
        "side",
        "timestamp",
        "ingestion_timestamp",
    ]
    assert event.to_dict()["event_id"] == event.event_id == "binance:BTC-USDT:7"
    assert event.to_dict()["quote_volume"] == event.quote_volume == 15_000.125


def test_the_lag_gauge_is_worked_out_from_the_latest_trade_when_read() -> None:
    counters = ProducerCounters()
    binance = counters.exchange("binance")
    assert binance.last_trade_lag_ms is None
    binance.last_trade = trade()
    assert binance.last_trade_lag_ms == pytest.approx(30.5)
    view = counters.snapshot()["exchanges"]["binance"]
    assert view["last_trade_lag_ms"] == pytest.approx(30.5)
    assert "last_trade" not in view
    assert list(view)[-4:] == ["last_trade_lag_ms", "connected", "rejected", "skipped"]
    orjson.dumps(counters.snapshot())  # JSON-able, as the health endpoint serves it
    assert ExchangeCounters(last_trade=trade(timestamp="not a time")).last_trade_lag_ms is None
