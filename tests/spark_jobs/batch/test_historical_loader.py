"""The historical loader against the exchange simulator's Binance REST over real HTTP: every id
of the range exactly once, resumable, under the weight budget, 429s waited out; the raw zone
locally and on the local S3."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.dataset as ds  # type: ignore[import-untyped]
import pytest

from devstack.simulator import BinanceConfig, Rest429, Scenario, SimulatorThread, SymbolSpec
from producer.exchanges.binance import Binance
from producer.symbols import SymbolMap
from spark_jobs.batch import historical_loader
from spark_jobs.batch.binance_rest import BinanceRestClient
from spark_jobs.batch.historical_loader import HistoricalLoader, LoadRequest
from spark_jobs.batch.history import IdRange, RateLimitedError, WeightBudget, covered_range
from spark_jobs.batch.raw_zone import RawZone

SYMBOL, PRODUCT = "BTC-USDT", "BTCUSDT"
WINDOW_S = 0.5  # the simulator's weight window, shortened from a minute
SERVER_LIMIT = 250  # weight per window the simulator allows
BUDGET = 100  # what the loader allows itself: 4 requests of 25 per window


def scenario(**kwargs: Any) -> Scenario:
    spec = SymbolSpec(symbol=SYMBOL, binance=PRODUCT, coinbase=None, trades_per_s=20)
    return Scenario(seed=3, symbols=[spec], duration_s=1000, **kwargs)


def ended(sim: SimulatorThread) -> SimulatorThread:
    sim.wait_until_ended(timeout=30)
    return sim


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """~20 000 trades; its 5th REST request gets a 429 with Retry-After 1. The weight window
    is on the wall clock, like Binance's minute, so the loader's budget sees the same windows."""
    faults = [Rest429(at_request_n=5, retry_after_s=1, exchange="binance")]
    config = BinanceConfig(rest_weight_limit_1m=SERVER_LIMIT, weight_window_s=WINDOW_S)
    with SimulatorThread(
        scenario(faults=faults), speed=4000, clock=time.time, binance=config
    ) as running:
        yield ended(running)


class Sleeps:
    """`time.sleep`, remembering each wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def client(
    rest_url: str, sleep: Sleeps | None = None, *, budget: int = BUDGET, window_s: float = WINDOW_S
) -> BinanceRestClient:
    """A client whose budget windows are the `sim` fixture's (wall clock, `WINDOW_S`)."""
    weights = WeightBudget(budget, window_s=window_s, clock=time.time)
    exchange = Binance(SymbolMap({SYMBOL: {"binance": PRODUCT}}))
    return BinanceRestClient(rest_url, PRODUCT, exchange, weights, sleep=sleep or Sleeps())


def loaded_ids(zone: RawZone) -> list[int]:
    """Trade ids in the raw zone's Parquet files, one per row (duplicates kept)."""
    dataset = ds.dataset(zone.location("historical"), format="parquet", partitioning="hive")
    table = dataset.to_table(columns=["event_id", "symbol", "timestamp", "date"])
    rows = table.to_pylist()
    for row in rows:
        assert row["symbol"] == SYMBOL
        assert str(row["date"]) == row["timestamp"].strftime("%Y-%m-%d")
    return sorted(int(row["event_id"].rsplit(":", 1)[1]) for row in rows)


def listing(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_a_range_lands_exactly_once_under_the_budget_through_a_429(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    ids = sim.emitted()[("binance", PRODUCT)]
    wanted = ids[100:-100]
    sleeps = Sleeps()
    rest = client(sim.binance_rest_url, sleeps)
    zone = RawZone.from_uri(str(tmp_path / "raw"))
    loader = HistoricalLoader(rest, zone, SYMBOL, rows_per_file=5_000)

    report = loader.load(LoadRequest(SYMBOL, from_id=wanted[0], to_id=wanted[-1]))

    assert loaded_ids(zone) == wanted  # every id once, nothing outside the range
    assert report.trades_written == len(wanted)
    assert len(report.files_written) == 4  # 5 000 rows per file
    assert [covered_range(path, SYMBOL) for path in sorted(report.files_written)] == [
        IdRange(wanted[0], wanted[4_999]),
        IdRange(wanted[5_000], wanted[9_999]),
        IdRange(wanted[10_000], wanted[14_999]),
        IdRange(wanted[15_000], wanted[-1]),
    ]
    pages = -(-len(wanted) // 1000)
    assert rest.stats.requests == pages + 1  # the refused request was sent again
    # The 429 was honoured: counted by the simulator, waited out for its Retry-After.
    counters = sim.counters()["binance"]
    assert counters.rest_requests == pages + 1
    assert counters.rest_429s == 1  # the scripted one: the weight limit never refused us
    assert rest.stats.rate_limited == 1
    assert rest.stats.retry_after_s == [1.0]
    assert 1.0 in sleeps.waits
    # The weight stayed under the budget, as the exchange itself reported it.
    assert 0 < rest.budget.max_used <= BUDGET
    assert rest.stats.budget_wait_s > 0  # 21 requests at 4 per window: it had to wait

    before = listing(tmp_path / "raw")
    again = HistoricalLoader(client(sim.binance_rest_url), zone, SYMBOL).load(
        LoadRequest(SYMBOL, from_id=wanted[0], to_id=wanted[-1])
    )
    assert (again.missing, again.trades_written, again.files_written) == ([], 0, [])
    assert listing(tmp_path / "raw") == before
    assert sim.counters()["binance"].rest_requests == pages + 1  # not a single request


def test_a_rerun_over_a_wider_range_fetches_only_what_is_missing(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    ids = sim.emitted()[("binance", PRODUCT)]
    zone = RawZone.from_uri(str(tmp_path / "raw"))
    HistoricalLoader(client(sim.binance_rest_url), zone, SYMBOL).load(
        LoadRequest(SYMBOL, from_id=ids[2_000], to_id=ids[4_999])
    )

    report = HistoricalLoader(client(sim.binance_rest_url), zone, SYMBOL).load(
        LoadRequest(SYMBOL, from_id=ids[0])  # up to the latest trade
    )

    assert report.ids == IdRange(ids[0], ids[-1])
    assert report.missing == [IdRange(ids[0], ids[1_999]), IdRange(ids[5_000], ids[-1])]
    assert report.trades_written == len(ids) - 3_000
    assert loaded_ids(zone) == ids


def test_a_time_range_across_midnight_is_split_by_date(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, 23, 58, tzinfo=UTC)
    with SimulatorThread(scenario(start=start), speed=4000) as sim:
        trades = ended(sim).trades("binance")
        begin, end = start + timedelta(seconds=90), start + timedelta(seconds=150)
        wanted = [
            t.trade_id
            for t in trades
            if begin <= datetime.fromtimestamp(t.time_ms / 1000, UTC) < end
        ]
        zone = RawZone.from_uri(str(tmp_path / "raw"))
        # The simulator's default limits: Binance's 6000 per minute.
        rest = client(sim.binance_rest_url, budget=3000, window_s=60)
        loader = HistoricalLoader(rest, zone, SYMBOL, max_page=500)
        report = loader.load(LoadRequest(SYMBOL, start=begin, end=end))

        assert report.ids == IdRange(wanted[0], wanted[-1])
        assert loaded_ids(zone) == wanted
        dates = sorted({path.split("/")[1] for path in report.files_written})
        assert dates == ["date=2026-01-01", "date=2026-01-02"]

        again = HistoricalLoader(rest, zone, SYMBOL).load(LoadRequest(SYMBOL, start=begin, end=end))
        assert (again.ids, again.trades_written) == (report.ids, 0)


def test_main_loads_into_s3(aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    bucket = "historical-raw-zone"
    s3 = boto3.client("s3", region_name=aws_env["AWS_REGION"])
    s3.create_bucket(Bucket=bucket)
    with SimulatorThread(scenario(), speed=4000) as sim:
        ids = ended(sim).emitted()[("binance", PRODUCT)]
        argv = [
            "--symbol",
            SYMBOL,
            "--from-id",
            str(ids[10]),
            "--to-id",
            str(ids[2_509]),
            "--rest-url",
            sim.binance_rest_url,
            "--raw-zone",
            f"s3://{bucket}/raw",
            "--rows-per-file",
            "1000",
        ]
        assert historical_loader.main(argv) == 0
        first = capsys.readouterr().out
        assert historical_loader.main(argv) == 0
        second = capsys.readouterr().out

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    prefix = "raw/historical/date=2026-01-01/symbol=BTC-USDT/binance-"
    assert len(keys) == 3
    assert all(k.startswith(prefix) for k in keys)
    zone = RawZone.from_uri(f"s3://{bucket}/raw")
    assert sum(zone.read_table(k.removeprefix("raw/")).num_rows for k in keys) == 2_500
    assert "2500 trades written in 3 files" in first
    assert f"s3://{bucket}/raw/historical" in first
    assert "2500 already loaded); 0 trades written in 0 files" in second


def test_main_needs_a_lower_bound(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        historical_loader.main(["--symbol", SYMBOL, "--to-id", "5"])
    assert exited.value.code == 2
    assert "give --from-id and/or --start" in capsys.readouterr().err


class BannedHandler(http.server.BaseHTTPRequestHandler):
    """Answers 418 with `Retry-After` from the server's script, then a page of one trade."""

    def do_GET(self) -> None:
        script: list[str] = self.server.script  # type: ignore[attr-defined]
        if script:
            body, status = b'{"code":-1003,"msg":"banned"}', 418
            headers = {"Retry-After": script.pop(0), "X-MBX-USED-WEIGHT-1M": "6000"}
        else:
            body, status = (
                (
                    b'[{"id":7,"price":"1.5","qty":"2","quoteQty":"3","time":1767225600000,'
                    b'"isBuyerMaker":false,"isBestMatch":true}]'
                ),
                200,
            )
            headers = {"X-MBX-USED-WEIGHT-1M": "50"}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def banning_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BannedHandler)
    server.script = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()


def test_a_418_is_waited_out_and_a_long_ban_ends_the_run(
    banning_server: http.server.ThreadingHTTPServer,
) -> None:
    url = f"http://127.0.0.1:{banning_server.server_address[1]}"
    banning_server.script.extend(["0", "0"])  # type: ignore[attr-defined]
    rest = client(url)
    trades = rest.page(7, 1000)
    assert [(t.trade_id, t.event_id, t.side) for t in trades] == [(7, "binance:BTC-USDT:7", "buy")]
    assert (rest.stats.requests, rest.stats.rate_limited) == (3, 2)
    assert rest.budget.max_used == 6000  # what the exchange said, even above our budget

    banning_server.script.append("86400")  # type: ignore[attr-defined]
    with pytest.raises(RateLimitedError, match="Retry-After 86400 s"):
        client(url).page(7, 1000)
