"""The `historical_loader` batch job: Binance trades by id from REST into the raw zone (SPEC §8).

    python -m spark_jobs.batch.historical_loader --symbol BTC-USDT --from-id N --to-id M
    python -m spark_jobs.batch.historical_loader --symbol BTC-USDT \\
        --start 2026-01-01T00:00:00Z --end 2026-01-02T00:00:00Z
        [--rest-url URL] [--raw-zone DIR|s3://bucket/raw] [--weight-fraction 0.5]

Pages `GET /api/v3/historicalTrades?symbol=&fromId=&limit=1000`, normalizes each page with the
producer's pure Binance parser (the same unified trades as the stream) and writes Parquet under
`{raw_zone}/historical/date=YYYY-MM-DD/symbol=BTC-USDT/` (layout: `spark_jobs.batch.history`).

- Id range: `--from-id`/`--to-id` (inclusive), a time range `--start` (inclusive) / `--end`
  (exclusive), or both (intersected). A time range becomes ids by searching trade ids on trade
  time (`history.id_boundary`: gallop down from the latest trade, then bisect, one page per
  probe: ~2·log2(distance / 1000) requests per bound, a few dozen at most). `aggTrades` with
  `startTime` would answer in one request (its `f` is a trade id), but the search needs no
  second endpoint (nor the simulator one). Without an upper bound the load runs to the latest
  trade at the start.
- Request weight: every request spends `Binance.trades_weight`; the budget is
  `--weight-fraction` of `--weight-limit` per minute, tracked from `X-MBX-USED-WEIGHT-1M`;
  429/418 answers are waited out for their `Retry-After`.
- Resumable: file names carry the id range they cover, so a rerun fetches only the ids no file
  covers, and a load stopped midway (crash, ban, Ctrl-C) continues where its last file ends.
  At most `--rows-per-file` trades are buffered before a file is written. One loader per
  symbol at a time: two concurrent runs over the same ids would both write them.

No Spark: the job is plain Python (it runs as an EMR Serverless entry point all the same).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from producer.events import TradeEvent
from producer.exchanges.binance import Binance
from producer.symbols import SymbolMap
from spark_jobs.batch.binance_rest import BinanceRestClient, RestStats
from spark_jobs.batch.history import (
    HISTORICAL_DIR,
    HistoricalLoadError,
    IdRange,
    WeightBudget,
    chunk_by_date,
    covered_range,
    file_path,
    id_boundary,
    missing_ranges,
    page_limit,
    trades_table,
)
from spark_jobs.batch.raw_zone import RawZone
from spark_jobs.common.settings import JobSettings, SettingsError, load_job_settings

log = logging.getLogger(__name__)

DEFAULT_WEIGHT_FRACTION = 0.5  # the rest of the IP's budget stays free for anything else
DEFAULT_ROWS_PER_FILE = 100_000


class TradesSource(Protocol):
    """What the loader needs from the exchange (`BinanceRestClient`)."""

    stats: RestStats

    def page(self, from_id: int, limit: int) -> list[TradeEvent]: ...

    def latest(self) -> TradeEvent | None: ...


@dataclass(frozen=True)
class LoadRequest:
    symbol: str
    from_id: int | None = None
    to_id: int | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.from_id is None and self.start is None:
            raise ValueError("give a lower bound: --from-id and/or --start")
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")


@dataclass
class LoadReport:
    symbol: str
    ids: IdRange | None = None  # the resolved range (None: no trade in it)
    missing: list[IdRange] = field(default_factory=list)  # not covered before this run
    trades_written: int = 0
    files_written: list[str] = field(default_factory=list)
    loaded_until: int | None = None  # last id covered when the exchange had no more trades
    elapsed_s: float = 0.0

    def summary(self, stats: RestStats, budget: WeightBudget, where: str) -> str:
        if self.ids is None:
            scope = "no trades in the requested range"
        else:
            already = self.ids.size - sum(gap.size for gap in self.missing)
            scope = f"ids {self.ids} ({self.ids.size} ids, {already} already loaded)"
        waits = ", ".join(f"{s:g} s" for s in stats.retry_after_s) or "none"
        if self.loaded_until is not None:
            scope += f"; the exchange has no trades after id {self.loaded_until} yet"
        return (
            f"historical_loader {self.symbol}: {scope}; {self.trades_written} trades written in "
            f"{len(self.files_written)} files under {where}/{HISTORICAL_DIR}; "
            f"{stats.requests} requests, {stats.rate_limited} rate limited (Retry-After waits: "
            f"{waits}), max used weight {budget.max_used} of a {budget.budget} budget, "
            f"{stats.budget_wait_s:.1f} s waited for the budget; {self.elapsed_s:.1f} s"
        )


class HistoricalLoader:
    """Loads one symbol's trades into the raw zone; see the module docstring."""

    def __init__(
        self,
        source: TradesSource,
        zone: RawZone,
        symbol: str,
        *,
        rows_per_file: int = DEFAULT_ROWS_PER_FILE,
        max_page: int = Binance.rest_page_limit,
    ) -> None:
        if rows_per_file < 1 or not 1 <= max_page <= Binance.rest_page_limit:
            raise ValueError("rows_per_file must be >= 1 and max_page in 1..1000")
        self.source = source
        self.zone = zone
        self.symbol = symbol
        self.rows_per_file = rows_per_file
        self.max_page = max_page

    def resolve(self, request: LoadRequest) -> IdRange | None:
        """The request as an id range; None when no trade falls in it."""
        latest: int | None = None
        if request.to_id is None or request.start is not None or request.end is not None:
            newest = self.source.latest()
            if newest is None:
                return None
            latest = newest.trade_id
        low = request.from_id if request.from_id is not None else 0
        high = request.to_id if request.to_id is not None else latest
        assert high is not None
        if latest is not None:
            high = min(high, latest)

        def probe(from_id: int) -> Sequence[TradeEvent]:
            return self.source.page(from_id, self.max_page)

        if request.start is not None:
            low = max(low, id_boundary(probe, request.start, low, high + 1, self.max_page))
        if request.end is not None and low <= high:
            high = min(high, id_boundary(probe, request.end, low, high + 1, self.max_page) - 1)
        return IdRange(low, high) if 0 <= low <= high else None

    def loaded(self) -> list[IdRange]:
        """The id ranges the raw zone's files of this symbol cover."""
        ranges = (covered_range(path, self.symbol) for path in self.zone.list_files(HISTORICAL_DIR))
        return [r for r in ranges if r is not None]

    def load(self, request: LoadRequest) -> LoadReport:
        started = time.monotonic()
        report = LoadReport(self.symbol, self.resolve(request))
        if report.ids is not None:
            report.missing = missing_ranges(report.ids, self.loaded())
            log.info(
                "%s: ids %s, %s range(s) to fetch: %s",
                self.symbol,
                report.ids,
                len(report.missing),
                ", ".join(map(str, report.missing)) or "none",
            )
            for gap in report.missing:
                if not self._load_gap(gap, report):
                    break
        report.elapsed_s = time.monotonic() - started
        return report

    def _load_gap(self, gap: IdRange, report: LoadReport) -> bool:
        """Fetch and write `gap`; False when the exchange ran out of trades before its end."""
        buffer: list[TradeEvent] = []
        first = from_id = gap.first
        complete = True
        while from_id <= gap.last:
            page = [
                trade
                for trade in self.source.page(from_id, page_limit(gap, from_id, self.max_page))
                if from_id <= trade.trade_id <= gap.last
            ]
            if not page:  # nothing (yet) at these ids: stop here, a rerun picks up from here
                report.loaded_until = from_id - 1
                complete = False
                break
            buffer.extend(page)
            from_id = page[-1].trade_id + 1
            if len(buffer) >= self.rows_per_file:
                self._write(buffer, IdRange(first, from_id - 1), report)
                buffer, first = [], from_id
        if buffer:
            self._write(buffer, IdRange(first, from_id - 1), report)
        return complete

    def _write(self, trades: list[TradeEvent], coverage: IdRange, report: LoadReport) -> None:
        for chunk in chunk_by_date(trades, coverage):
            path = file_path(chunk.date, self.symbol, chunk.ids)
            self.zone.write_parquet(path, trades_table(chunk.trades))
            report.trades_written += len(chunk.trades)
            report.files_written.append(path)
            log.info("wrote %s trades to %s", len(chunk.trades), self.zone.location(path))


# --- The entry point -----------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def binance_product(settings: JobSettings, symbol: str) -> str:
    """The configured Binance product of a canonical symbol, else `BASE-QUOTE` -> `BASEQUOTE`."""
    return settings.symbols.get(symbol, {}).get("binance") or symbol.replace("-", "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.batch.historical_loader",
        description="Binance REST trades by id -> Parquet in the raw zone (resumable).",
    )
    parser.add_argument("--symbol", required=True, help="canonical symbol, e.g. BTC-USDT")
    parser.add_argument("--from-id", type=int, help="first trade id (inclusive)")
    parser.add_argument("--to-id", type=int, help="last trade id (inclusive; default: latest)")
    parser.add_argument("--start", type=_instant, help="ISO time, inclusive (UTC if no zone)")
    parser.add_argument("--end", type=_instant, help="ISO time, exclusive (default: latest)")
    parser.add_argument("--rest-url", default=Binance.rest_url, help="Binance REST base URL")
    parser.add_argument("--raw-zone", help="local folder or s3://bucket/prefix (default: settings)")
    parser.add_argument(
        "--weight-fraction",
        type=_fraction,
        default=DEFAULT_WEIGHT_FRACTION,
        help=f"share of the weight limit to use (default {DEFAULT_WEIGHT_FRACTION})",
    )
    parser.add_argument(
        "--weight-limit",
        type=int,
        default=Binance.weight_limit_1m,
        help=f"the exchange's request weight per minute (default {Binance.weight_limit_1m})",
    )
    parser.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE)
    args = parser.parse_args(argv)
    if args.from_id is None and args.start is None:
        parser.error("give --from-id and/or --start")
    if args.rows_per_file < 1:
        parser.error("--rows-per-file must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_job_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    product = binance_product(settings, args.symbol)
    budget = WeightBudget.fraction_of(args.weight_limit, args.weight_fraction)
    exchange = Binance(SymbolMap({args.symbol: {"binance": product}}))
    client = BinanceRestClient(args.rest_url, product, exchange, budget)
    zone = RawZone.from_uri(args.raw_zone or settings.resolve_path(settings.raw_zone))
    loader = HistoricalLoader(client, zone, args.symbol, rows_per_file=args.rows_per_file)
    request = LoadRequest(args.symbol, args.from_id, args.to_id, args.start, args.end)
    try:
        report = loader.load(request)
    except HistoricalLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary(client.stats, budget, zone.uri))
    return 0


if __name__ == "__main__":
    sys.exit(main())
