"""The historical loader's pure pieces: id ranges, file layout, weight budget, id search."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from producer.events import TradeEvent, iso_from_ms
from spark_jobs.batch.history import (
    TRADE_SCHEMA,
    IdRange,
    WeightBudget,
    chunk_by_date,
    covered_range,
    file_path,
    id_boundary,
    merge_ranges,
    missing_ranges,
    page_limit,
    retry_after_s,
    trades_table,
)

MIDNIGHT = datetime(2026, 1, 2, tzinfo=UTC)


def event(trade_id: int, moment: datetime) -> TradeEvent:
    return TradeEvent(
        exchange="binance",
        symbol="BTC-USDT",
        trade_id=trade_id,
        price=100.0,
        quantity=0.5,
        side="buy",
        timestamp=iso_from_ms(int(moment.timestamp() * 1000)),
        ingestion_timestamp="2026-02-01T00:00:00.000001Z",
    )


def test_missing_ranges_are_what_no_file_covers() -> None:
    loaded = [IdRange(20, 29), IdRange(10, 14), IdRange(15, 17), IdRange(40, 60)]
    assert merge_ranges(loaded) == [IdRange(10, 17), IdRange(20, 29), IdRange(40, 60)]
    assert missing_ranges(IdRange(5, 45), loaded) == [
        IdRange(5, 9),
        IdRange(18, 19),
        IdRange(30, 39),
    ]
    assert missing_ranges(IdRange(12, 16), loaded) == []
    assert missing_ranges(IdRange(61, 70), loaded) == [IdRange(61, 70)]
    assert missing_ranges(IdRange(0, 9), []) == [IdRange(0, 9)]


def test_id_ranges_reject_nonsense() -> None:
    with pytest.raises(ValueError, match=r"invalid id range 5\.\.4"):
        IdRange(5, 4)
    assert IdRange(3, 3).size == 1


def test_pages_never_run_past_the_gap() -> None:
    gap = IdRange(100, 2_549)
    assert page_limit(gap, 100, 1000) == 1000
    assert page_limit(gap, 2_100, 1000) == 450


def test_file_names_carry_the_range_they_cover() -> None:
    path = file_path("2026-01-01", "BTC-USDT", IdRange(123, 4_567))
    assert path == (
        "historical/date=2026-01-01/symbol=BTC-USDT/binance-000000000123-000000004567.parquet"
    )
    assert covered_range(path, "BTC-USDT") == IdRange(123, 4_567)
    assert covered_range(path, "ETH-USDT") is None
    temporary = "historical/date=2026-01-01/symbol=BTC-USDT/.3f2a.tmp"
    assert covered_range(temporary, "BTC-USDT") is None
    assert covered_range("historical/symbol=BTC-USDT/binance-1-2.parquet", "BTC-USDT") is None


def test_chunks_split_at_midnight_and_tile_the_coverage() -> None:
    trades = [
        event(10, MIDNIGHT - timedelta(seconds=2)),
        event(11, MIDNIGHT - timedelta(seconds=1)),
        event(14, MIDNIGHT),  # ids 12, 13 were never served: still covered
        event(15, MIDNIGHT + timedelta(seconds=1)),
    ]
    chunks = chunk_by_date(trades, IdRange(8, 16))
    assert [(c.date, c.ids, [t.trade_id for t in c.trades]) for c in chunks] == [
        ("2026-01-01", IdRange(8, 13), [10, 11]),
        ("2026-01-02", IdRange(14, 16), [14, 15]),
    ]


def test_trades_table_has_the_raw_trades_schema() -> None:
    table = trades_table([event(7, MIDNIGHT + timedelta(milliseconds=123))])
    assert table.schema == TRADE_SCHEMA
    row = table.to_pylist()[0]
    assert row["event_id"] == "binance:BTC-USDT:7"
    assert row["timestamp"] == MIDNIGHT + timedelta(milliseconds=123)
    assert row["quote_volume"] == 50.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_budget_waits_for_the_next_window() -> None:
    clock = FakeClock(120.0)
    budget = WeightBudget.fraction_of(6000, 0.5, clock=clock)
    assert budget.budget == 3000
    assert budget.wait_s(25) == 0.0
    budget.spend(25)
    budget.observe("2990")  # another client of the same IP used most of it
    assert budget.max_used == 2990
    clock.now = 150.0
    assert budget.wait_s(25) == pytest.approx(30.001)
    clock.now = 180.001  # a new minute: nothing used yet
    assert budget.wait_s(25) == 0.0
    budget.spend(25)
    budget.observe(None)  # no header: our own count stands
    assert budget.used == 25


def test_a_request_heavier_than_the_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="never fits"):
        WeightBudget(20).wait_s(25)
    with pytest.raises(ValueError, match="fraction"):
        WeightBudget.fraction_of(6000, 1.5)


def test_retry_after() -> None:
    assert retry_after_s("7") == 7.0
    assert retry_after_s(None) == 1.0
    assert retry_after_s("soon") == 1.0
    assert retry_after_s("-3") == 0.0


class Exchange:
    """Trades with ids first..last-1, one per second from `start`; pages like the simulator's
    historicalTrades (ids below the first come back empty unless the page reaches it)."""

    def __init__(self, first: int, last: int, start: datetime, page: int = 1000) -> None:
        self.first, self.last, self.start, self.page = first, last, start, page
        self.probes: list[int] = []

    def __call__(self, from_id: int) -> Sequence[TradeEvent]:
        self.probes.append(from_id)
        ids = range(max(from_id, self.first), min(from_id + self.page, self.last))
        return [event(i, self.start + timedelta(seconds=i - self.first)) for i in ids]


def test_id_boundary_finds_the_first_trade_at_or_after_a_time() -> None:
    exchange = Exchange(50_000, 60_000, MIDNIGHT)
    high = 60_000  # latest + 1
    at = MIDNIGHT + timedelta(seconds=7_777)
    assert id_boundary(exchange, at, 0, high) == 57_777
    just_after = MIDNIGHT + timedelta(seconds=7_777, milliseconds=1)
    assert id_boundary(exchange, just_after, 0, high) == 57_778
    assert id_boundary(exchange, MIDNIGHT - timedelta(days=1), 0, high) == 50_000
    assert id_boundary(exchange, MIDNIGHT + timedelta(days=1), 0, high) == high
    assert len(exchange.probes) < 80


def test_a_recent_boundary_costs_few_probes() -> None:
    exchange = Exchange(1_000_000, 1_100_000, MIDNIGHT)
    at = MIDNIGHT + timedelta(seconds=99_000 - 500)
    assert id_boundary(exchange, at, 0, 1_100_000) == 1_098_500
    assert len(exchange.probes) <= 3
