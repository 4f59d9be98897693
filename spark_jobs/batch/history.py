"""Pure pieces of the historical loader: id ranges, the request-weight budget, the id search by
trade time, and the raw zone's file layout. No sockets, no file systems.

Layout (Hive-style partitions, so Spark and pyarrow read `date` and `symbol` from the path)::

    {raw_zone}/historical/date=2026-01-01/symbol=BTC-USDT/binance-000123456000-000123555999.parquet

A file's name is the id range it covers: every trade of the symbol with an id in
`[first, last]` that falls on that date is in it (Binance trade ids are consecutive per symbol).
The union of those ranges is what is loaded, so a rerun fetches only the ids no file covers:
nothing is written twice, and no manifest can disagree with the files.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from producer.events import TradeEvent
from spark_jobs.common import schemas
from spark_jobs.common.tables import arrow_schema

HISTORICAL_DIR = "historical"
EXCHANGE = "binance"
_FILE_RE = re.compile(rf"^{EXCHANGE}-(\d+)-(\d+)\.parquet$")
_ID_DIGITS = 12
TRADE_SCHEMA = arrow_schema(schemas.UNIFIED_TRADE)


class HistoricalLoadError(Exception):
    """Root of the historical loader's errors."""


class RestError(HistoricalLoadError):
    """The exchange answered with an error that waiting does not fix."""


class RateLimitedError(HistoricalLoadError):
    """The exchange kept refusing (429/418), or asked to wait longer than we are willing to."""


# --- Id ranges -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class IdRange:
    """Trade ids `first..last`, both inclusive."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < self.first:
            raise ValueError(f"invalid id range {self.first}..{self.last}")

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


def merge_ranges(ranges: Iterable[IdRange]) -> list[IdRange]:
    """Sorted, with overlapping and adjacent ranges joined."""
    merged: list[IdRange] = []
    for current in sorted(ranges):
        if merged and current.first <= merged[-1].last + 1:
            if current.last > merged[-1].last:
                merged[-1] = IdRange(merged[-1].first, current.last)
        else:
            merged.append(current)
    return merged


def missing_ranges(wanted: IdRange, loaded: Iterable[IdRange]) -> list[IdRange]:
    """The parts of `wanted` that no range of `loaded` covers, ascending."""
    gaps = []
    cursor = wanted.first
    for done in merge_ranges(loaded):
        if done.last < cursor:
            continue
        if done.first > wanted.last:
            break
        if done.first > cursor:
            gaps.append(IdRange(cursor, done.first - 1))
        cursor = done.last + 1
        if cursor > wanted.last:
            return gaps
    if cursor <= wanted.last:
        gaps.append(IdRange(cursor, wanted.last))
    return gaps


def page_limit(gap: IdRange, from_id: int, max_limit: int) -> int:
    """The `limit` of the page starting at `from_id` inside `gap` (never past its end)."""
    return max(1, min(max_limit, gap.last - from_id + 1))


# --- Files ---------------------------------------------------------------------------------------


def partition_dir(date: str, symbol: str) -> str:
    """`historical/date=YYYY-MM-DD/symbol=BTC-USDT`, relative to the raw zone."""
    return f"{HISTORICAL_DIR}/date={date}/symbol={symbol}"


def file_name(ids: IdRange) -> str:
    return f"{EXCHANGE}-{ids.first:0{_ID_DIGITS}d}-{ids.last:0{_ID_DIGITS}d}.parquet"


def file_path(date: str, symbol: str, ids: IdRange) -> str:
    return f"{partition_dir(date, symbol)}/{file_name(ids)}"


def covered_range(path: str, symbol: str) -> IdRange | None:
    """The id range a raw-zone file of `symbol` covers, from its path; None for other files
    (another symbol, temporary files, anything else)."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[-2] != f"symbol={symbol}" or not parts[-3].startswith("date="):
        return None
    match = _FILE_RE.match(parts[-1])
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return IdRange(first, last) if first <= last else None


@dataclass(frozen=True)
class FileChunk:
    """The trades of one output file: one date, a contiguous id coverage."""

    date: str
    ids: IdRange
    trades: tuple[TradeEvent, ...]


def trade_date(trade: TradeEvent) -> str:
    """UTC date of the exchange timestamp (`2026-01-01T00:00:00.123Z` -> `2026-01-01`)."""
    return trade.timestamp[:10]


def chunk_by_date(trades: Sequence[TradeEvent], coverage: IdRange) -> list[FileChunk]:
    """Split ascending trades that cover `coverage` into one chunk per date; the chunks' id
    ranges tile `coverage` exactly (a date's range ends where the next date's first trade
    starts, so ids no trade has still count as covered)."""
    chunks: list[FileChunk] = []
    group: list[TradeEvent] = []
    cursor = coverage.first
    for trade in trades:
        if group and trade_date(trade) != trade_date(group[0]):
            ids = IdRange(cursor, trade.trade_id - 1)
            chunks.append(FileChunk(trade_date(group[0]), ids, tuple(group)))
            cursor, group = trade.trade_id, []
        group.append(trade)
    if group:
        chunks.append(FileChunk(trade_date(group[0]), IdRange(cursor, coverage.last), tuple(group)))
    return chunks


def _instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso)  # Python 3.11 reads the trailing `Z`


def trades_table(trades: Sequence[TradeEvent]) -> pa.Table:
    """Unified trades as Arrow, in `raw_trades`' schema (µs UTC timestamps)."""
    rows = [trade.to_dict() for trade in trades]
    for row in rows:
        row["timestamp"] = _instant(str(row["timestamp"]))
        row["ingestion_timestamp"] = _instant(str(row["ingestion_timestamp"]))
    return pa.Table.from_pylist(rows, schema=TRADE_SCHEMA)


# --- Request weight ------------------------------------------------------------------------------


@dataclass
class WeightBudget:
    """The request weight we allow ourselves per window (a fraction of the exchange's limit).

    Binance counts weight per fixed window aligned to the clock (`X-MBX-USED-WEIGHT-1M`: the
    minute) and reports the window's total after every request; `observe` takes that number as
    the truth (it includes other clients of the same IP). `wait_s` says how long to wait before a
    request of `weight`: until the window ends when it would cross the budget.
    """

    budget: int
    window_s: float = 60.0
    clock: Callable[[], float] = time.time
    used: int = 0
    max_used: int = 0  # the highest window total the exchange reported
    _window: int | None = field(default=None, repr=False)

    @classmethod
    def fraction_of(
        cls,
        limit: int,
        fraction: float,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> WeightBudget:
        if not 0 < fraction <= 1:
            raise ValueError(f"weight fraction must be in (0, 1], got {fraction}")
        return cls(int(limit * fraction), window_s, clock)

    def _roll(self) -> float:
        now = self.clock()
        window = math.floor(now / self.window_s)
        if window != self._window:
            self._window, self.used = window, 0
        return now

    def wait_s(self, weight: int) -> float:
        if weight > self.budget:
            raise ValueError(f"a request of weight {weight} never fits a budget of {self.budget}")
        now = self._roll()
        if self.used + weight <= self.budget:
            return 0.0
        assert self._window is not None
        # A hair past the boundary, so the next `_roll` is in the new window.
        return (self._window + 1) * self.window_s - now + 0.001

    def spend(self, weight: int) -> None:
        """Count a request about to be sent (until the exchange's header says better)."""
        self._roll()
        self.used += weight

    def observe(self, header: str | None) -> None:
        """Take the exchange's window total from the weight header, when it sent one."""
        self._roll()
        if header is not None and header.strip().isdigit():
            self.used = int(header)
            self.max_used = max(self.max_used, self.used)


def retry_after_s(header: str | None, default_s: float = 1.0) -> float:
    """`Retry-After` in seconds (Binance sends whole seconds); `default_s` when absent/odd."""
    try:
        return max(0.0, float(header)) if header is not None else default_s
    except ValueError:
        return default_s


# --- Finding ids by time -------------------------------------------------------------------------

# One page of trades with ids >= from_id, ascending (empty: nothing served there).
PageProbe = Callable[[int], Sequence[TradeEvent]]


def id_boundary(
    probe: PageProbe, moment: datetime, low: int, high: int, page_size: int = 1000
) -> int:
    """The id boundary of `moment` in `[low, high]`: every trade with a smaller id traded
    before `moment`, every trade from it on at or after it (`high` when none does).

    Trade ids grow with trade time, so a search works. Each probe is one page, and the whole
    page is used (a boundary inside it ends the search). It gallops down from `high` first,
    since loads are usually recent, then bisects down to one page of `page_size` ids. `high`
    is the latest id + 1; ids below the first trade served (empty pages) count as before.
    """
    step = page_size
    probing_down = True
    boundary = high  # the first trade at or after `moment` seen so far (ids between: none)
    while low < high:
        if high - low <= page_size:
            mid = low  # one page from `low` holds the boundary
        elif probing_down:
            mid = max(low, high - step)
            step *= 2
        else:
            mid = (low + high) // 2
        page = [trade for trade in probe(mid) if mid <= trade.trade_id < high]
        if not page:  # no trade at ids mid..mid+page_size-1: below the first one served
            low, probing_down = min(mid + page_size, high), False
            continue
        if traded_at(page[0]) >= moment:
            high, boundary = mid, page[0].trade_id
            continue
        probing_down = False
        hit = next((trade for trade in page if traded_at(trade) >= moment), None)
        if hit is not None:
            return hit.trade_id
        low = page[-1].trade_id + 1
    return boundary


def traded_at(trade: TradeEvent) -> datetime:
    return _instant(trade.timestamp)
