"""`make demo`: the whole pipeline on one machine, with nothing but Python and Java.

    python -m devstack.demo [--minutes 90] [--speed 30] [--seed 7] [--workdir var/demo]
    python -m devstack.demo --short              # 25 simulated minutes at 60x (the test's run)
    python -m devstack.demo --live [--minutes 15]

What it runs, in order:

1. the local AWS endpoint (moto server) and, in it, the trade stream and the DynamoDB alerts
   table; the Iceberg namespace and tables in a SQLite catalog under the workdir
   (`<workdir>/warehouse`), the raw zone (DLQ) and the checkpoints under the workdir too;
2. the exchange simulator with a scripted market (`demo_scenario`: volume burst, whales, a
   cross-exchange dislocation, a silent gap, dropped connections, skipped trade ids, malformed
   frames), played `--speed` times faster than real time, starting at the current wall-clock
   minute (so trade times look recent to the quality checks; the market then runs ahead of the
   wall clock);
3. the producer as users run it (`python -m producer run`, a separate process);
4. the four streaming jobs (volume_anomaly, whale_detector, spread_calculator, trade_archiver)
   in ONE Spark session inside this process, each with its own checkpoint and queries, so the
   demo fits two cores; in production each job is its own Spark application (EMR Serverless).

The market opens once the producer and the jobs are ready. While it plays, progress lines show
trades in, micro-batches done and alerts so far (DynamoDB); halfway through, a "misbehaving
upstream" puts three bad records straight on the stream (the producer itself rejects malformed
exchange frames before Kinesis). When the market ends the producer is stopped (SIGTERM) and
every query is drained, so the last windows close. Then it prints what was found, read back from
the Iceberg tables through the saved Athena queries (`ddl/queries/`, run locally by
`spark_jobs.queries`), checks the findings against the script (every whale, the burst and the
dislocation found; every emitted trade archived exactly once), writes the HTML report
(`<workdir>/report.html`) and ends with

    demo: volume_anomaly=N whale=N spread=N report=PATH

Exit code 0 when every check passed, 1 when something was missed, 130 on Ctrl-C. Everything it
started is stopped in every case. Each run starts from a fresh workdir state.

`--live`: the same pipeline against the live exchanges (the producer's default URLs, internet
needed) and the local AWS endpoint, for `--minutes` real minutes, without the script check.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from devstack.aws import REPO_ROOT, LocalAws, free_port
from devstack.report import COLORS, Band, Chart, Marker, Series, html_table, render_report
from devstack.simulator import (
    Dislocation,
    DropConnections,
    Malformed,
    Scenario,
    SilentGap,
    SimulatorThread,
    SkipTradeIds,
    SymbolSpec,
    Trade,
    VolumeBurst,
    Whale,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

    from spark_jobs.common.detector import BaseDetector
    from spark_jobs.common.settings import JobSettings

STREAM = "crypto-pulse-trades"
ALERTS_TABLE = "crypto-pulse-alerts"
# Not `crypto_pulse`: a pyiceberg configuration of that name (e.g. Glue) must not catch the demo.
CATALOG = "crypto_pulse_demo"
SYMBOLS = {
    "BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"},
    "ETH-USDT": {"binance": "ETHUSDT", "coinbase": "ETH-USD"},
}
JOBS = ("volume_anomaly", "whale_detector", "spread_calculator", "trade_archiver")
# Alert type -> the name it has in the summary line.
KINDS = {"VOLUME_SPIKE": "volume_anomaly", "WHALE_TRADE": "whale", "WIDE_SPREAD": "spread"}

# The market: the script happens in the first `minutes - TAIL_S` simulated minutes; the quiet
# tail moves the watermark past the script's last windows.
DEFAULT_MINUTES = 90.0
DEFAULT_SPEED = 30.0
SHORT_MINUTES, SHORT_SPEED = 25.0, 60.0
LIVE_MINUTES = 15.0
MIN_MINUTES = 20.0
TAIL_S = 180.0
BASELINE_MIN_WINDOWS = 12  # the burst comes after at least this many baseline minutes

# The jobs' timing at the demo's speed (simulated seconds; 30x: 90 s is 3 real seconds).
WATERMARK_S = 90
TRIGGER_S = 2.0
LIVE_WATERMARK_S = 60
LIVE_TRIGGER_S = 5.0
PROGRESS_EVERY_S = 3.0

DEFAULT_WORKDIR = REPO_ROOT / "var" / "demo"  # `make query DEMO=1` reads its tables
# The state of a previous run that a new run removes (never the workdir itself).
RUN_STATE = ("checkpoints", "warehouse", "raw", "spill.jsonl", "report.html", "progress.jsonl")


class DemoError(Exception):
    """The demo could not run (a component failed to start or died)."""


# --------------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------------


def demo_scenario(seed: int, minutes: float, start: datetime) -> Scenario:
    """The scripted market: `minutes` simulated minutes from `start` (a whole minute).

    Two symbols on both exchanges (BTC 1 trade/s, ETH 0.5 trade/s per exchange: the four jobs
    in one session on two cores keep up with that at 30x). The events are
    placed at fractions of the scripted span so a shorter market keeps them all, apart from one
    another and from the silent gap:

    - a volume burst on coinbase BTC-USDT (8x the trades, each ~2.8x larger: ~23x the volume)
      for two whole minutes, after at least 12 baseline minutes (the detector needs 10);
    - five whales from 250 000 to 2 500 000 USDT, never on coinbase BTC-USDT before the burst
      (a whale in the burst's baseline would widen it);
    - coinbase ETH-USDT 1.2 % above binance for 150 s (five 30 s spread windows; threshold 0.5 %);
    - a 45 s silent gap on binance, and delivery faults the producer recovers from.
    """
    if minutes < MIN_MINUTES:
        raise ValueError(f"the scripted market needs at least {MIN_MINUTES:g} minutes")
    span = minutes * 60 - TAIL_S

    def at(fraction: float, step_s: int = 1) -> float:
        return float(step_s * round(fraction * span / step_s))

    burst_start = max(BASELINE_MIN_WINDOWS * 60.0, at(0.35, 60))
    whales = (
        Whale(at(0.15), "binance", "BTC-USDT", 750_000.0, "buy"),
        Whale(at(0.30), "coinbase", "ETH-USDT", 250_000.0, "sell"),
        Whale(at(0.50), "binance", "ETH-USDT", 1_200_000.0, "buy"),
        Whale(max(at(0.70), burst_start + 240), "coinbase", "BTC-USDT", 400_000.0, "sell"),
        Whale(at(0.90), "binance", "BTC-USDT", 2_500_000.0, "sell"),
    )
    return Scenario(
        seed=seed,
        start=start,
        symbols=(
            SymbolSpec(trades_per_s=1.0),
            SymbolSpec(
                symbol="ETH-USDT",
                binance="ETHUSDT",
                coinbase="ETH-USD",
                base_price=3_000.0,
                trades_per_s=0.5,
            ),
        ),
        events=(
            *whales,
            VolumeBurst(burst_start, 120.0, 8.0, exchange="coinbase", symbol="BTC-USDT"),
            Dislocation(at(0.75, 30), 150.0, "coinbase", "ETH-USDT", 1.2),
            SilentGap(at(0.42), 45.0, exchange="binance"),
        ),
        faults=(
            DropConnections(every_n_trades=5000),
            SkipTradeIds(at_trade=1500, count=12, exchange="binance"),
            SkipTradeIds(at_trade=2500, count=8, exchange="coinbase"),
            Malformed(at_trade=300, exchange="binance"),
            Malformed(at_trade=350, exchange="coinbase"),
            Malformed(at_trade=4000, exchange="binance"),
        ),
        duration_s=minutes * 60,
    )


def current_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def sim_time(scenario: Scenario, sim_s: float) -> datetime:
    return scenario.start + timedelta(seconds=sim_s)


def window_floor(moment: datetime, window_s: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_s, UTC)


@dataclass(frozen=True)
class CheckResult:
    what: str
    found: str | None  # how it was found; None: missed

    @property
    def ok(self) -> bool:
        return self.found is not None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_script(
    scenario: Scenario,
    trades: Sequence[Trade],
    alerts: Sequence[dict[str, Any]],
    archived: collections.Counter[str],
    spread_window_s: int,
) -> list[CheckResult]:
    """Each scripted event against the alerts (pure): every Whale → a WHALE_TRADE alert for its
    trade (same exchange, symbol, size); the VolumeBurst → a VOLUME_SPIKE of its exchange/symbol
    in its minutes; the Dislocation → a WIDE_SPREAD of its symbol in its time range; and every
    trade the exchanges emitted archived in `raw_trades` exactly once."""
    by_id = {a["alert_id"]: a for a in alerts}
    results = []
    whale_trades = [t for t in trades if t.whale]
    for event in scenario.events:
        if isinstance(event, Whale):
            what = (
                f"whale {event.quote_volume:,.0f} {event.symbol.split('-')[1]} {event.side} "
                f"on {event.exchange} {event.symbol} at {sim_time(scenario, event.at_s):%H:%M:%S}"
            )
            found = None
            for trade in whale_trades:
                if (trade.exchange, trade.symbol, trade.sim_s) != (
                    event.exchange,
                    event.symbol,
                    event.at_s,
                ):
                    continue
                alert = by_id.get(f"whale:{trade.event_id}")
                if (
                    alert is not None
                    and alert["alert_type"] == "WHALE_TRADE"
                    and math.isclose(alert["metric"], trade.quote_volume, rel_tol=1e-6)
                ):
                    found = f"{alert['alert_id']} ({alert['metric']:,.2f})"
            results.append(CheckResult(what, found))
        elif isinstance(event, VolumeBurst):
            low = window_floor(sim_time(scenario, event.start_s), 60)
            high = sim_time(scenario, event.end_s)
            what = (
                f"volume burst x{event.multiplier:g} on {event.exchange} {event.symbol} "
                f"{low:%H:%M}-{high:%H:%M}"
            )
            spikes = [
                a
                for a in alerts
                if a["alert_type"] == "VOLUME_SPIKE"
                and (a["exchange"], a["symbol"]) == (event.exchange, event.symbol)
                and low <= _utc(a["event_time"]) < high
            ]
            best = max(spikes, key=lambda a: a["metric"], default=None)
            found = None if best is None else f"{best['alert_id']} (z = {best['metric']:.1f})"
            results.append(CheckResult(what, found))
        elif isinstance(event, Dislocation):
            low = window_floor(sim_time(scenario, event.start_s), spread_window_s)
            high = sim_time(scenario, event.end_s)
            what = (
                f"dislocation {event.pct:+g} % on {event.exchange} {event.symbol} "
                f"{low:%H:%M:%S}-{high:%H:%M:%S}"
            )
            wide = [
                a
                for a in alerts
                if a["alert_type"] == "WIDE_SPREAD"
                and a["symbol"] == event.symbol
                and low <= _utc(a["event_time"]) < high
            ]
            best = max(wide, key=lambda a: a["metric"], default=None)
            found = None
            if best is not None:
                found = (
                    f"{len(wide)} WIDE_SPREAD windows, widest {best['metric']:.2f} % "
                    f"({best['alert_id']})"
                )
            results.append(CheckResult(what, found))
    emitted = {t.event_id for t in trades}
    missing = emitted - set(archived)
    duplicated = sum(1 for n in archived.values() if n > 1)
    results.append(
        CheckResult(
            f"every one of the {len(emitted):,} trades the exchanges emitted archived once",
            None
            if missing or duplicated
            else f"raw_trades holds {sum(archived.values()):,} rows, 0 missing, 0 duplicated",
        )
    )
    return results


# --------------------------------------------------------------------------------------------
# Settings and provisioning
# --------------------------------------------------------------------------------------------


def demo_settings(workdir: Path, live: bool) -> JobSettings:
    """The jobs' settings for the demo: every path under the workdir, the local catalog, timing
    for the market's speed. CloudWatch metrics are off: each job's StreamingMetricsListener
    reports every query of its session, and here one session runs all four jobs."""
    from spark_jobs.common.settings import load_job_settings

    return load_job_settings(
        symbols=SYMBOLS,
        # A guard: the source's read-ahead ends a batch at an empty GetRecords page or here.
        stream={
            "name": STREAM,
            "starting_position": "TRIM_HORIZON",
            "max_records_per_batch": 20_000,
        },
        spark={
            "master": "local[2]",
            "shuffle_partitions": 1,
            "state_store": "rocksdb",
            "conf": {
                "spark.ui.showConsoleProgress": "false",
                # A few minutes of JVM: the C2 compiler would cost more CPU than it saves. C1
                # alone gets a 48 MB code cache by default, which the four jobs fill.
                "spark.driver.extraJavaOptions": (
                    "-Duser.timezone=UTC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
                ),
            },
        },
        streaming={
            "watermark_s": LIVE_WATERMARK_S if live else WATERMARK_S,
            "trigger_interval_s": LIVE_TRIGGER_S if live else TRIGGER_S,
            "checkpoint_root": str(workdir / "checkpoints"),
        },
        raw_zone=str(workdir / "raw"),
        tables={
            "catalog": CATALOG,
            "namespace": "crypto_pulse",
            "warehouse": str(workdir / "warehouse"),
        },
        alerts={"dynamodb_table": ALERTS_TABLE},
        metrics={"cloudwatch": False},
    )


def fresh_workdir(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in RUN_STATE:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def provision(settings: JobSettings, region: str) -> list[str]:
    import boto3

    from devstack.provision import ensure_alerts_table, ensure_iceberg, ensure_stream

    ensure_stream(boto3.client("kinesis", region_name=region), STREAM, shards=2)
    ensure_alerts_table(boto3.client("dynamodb", region_name=region), ALERTS_TABLE)
    return ensure_iceberg(settings)


# --------------------------------------------------------------------------------------------
# The running parts
# --------------------------------------------------------------------------------------------


class MarketGate:
    """The simulator's real-time clock, held at zero until `open()`: the market opens once the
    producer and the jobs are ready, so "every trade the exchanges emitted" is the right
    expectation."""

    def __init__(self) -> None:
        self._opened_at: float | None = None

    def __call__(self) -> float:
        return 0.0 if self._opened_at is None else time.monotonic() - self._opened_at

    def open(self) -> None:
        self._opened_at = time.monotonic()


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


class ProducerProcess:
    """`python -m producer run` in its own process group (Ctrl-C reaches the demo, which stops it
    in order: SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            **env,
            "PYTHONPATH": str(REPO_ROOT),
            "PRODUCER_HEALTH_HOST": "127.0.0.1",
            "PRODUCER_HEALTH_PORT": str(self.port),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def start(self) -> ProducerProcess:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "producer", "run"],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise DemoError("producer not started")
        return self._process

    def ready(self) -> bool:
        return _get_json(f"http://127.0.0.1:{self.port}/readyz")[0] == 200

    def metrics(self) -> dict[str, Any] | None:
        status, body = _get_json(f"http://127.0.0.1:{self.port}/metrics")
        return body if status == 200 and isinstance(body, dict) else None

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout_s: float, hint: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if not self.alive():
                raise DemoError(f"the producer exited early; see {self.log_path}")
            if time.monotonic() > deadline:
                raise DemoError(f"the producer was not ready in {timeout_s:g} s{hint}")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (the producer drains its queue and flushes), then SIGKILL if it hangs."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.exit_code = process.returncode
        return process.returncode

    def final_counters(self) -> dict[str, Any]:
        """The counters of the producer's "producer stopped" log line."""
        stopped = [
            json.loads(line)
            for line in self.log_path.read_text().splitlines()
            if line.startswith("{") and '"producer stopped"' in line
        ]
        return dict(stopped[-1].get("counters", {})) if stopped else {}

    def __enter__(self) -> ProducerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self.stop(timeout_s=15.0)


@contextlib.contextmanager
def output_into(path: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 at `path` while the block runs: a child started inside
    (the Spark JVM, and through it the Python workers) keeps writing its output there for good,
    not between the demo's progress lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with path.open("ab") as log:
            for fd in saved:
                os.dup2(log.fileno(), fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def start_spark(settings: JobSettings, log_path: Path) -> SparkSession:
    from spark_jobs.common.session import build_session

    with output_into(log_path):
        spark = build_session(settings, "crypto-pulse-demo")
        spark.sparkContext.setLogLevel("WARN")
    return spark


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, …), from `ps`."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=False
    ).stdout
    children: dict[int, list[int]] = collections.defaultdict(list)
    for line in listing.splitlines():
        pid_text, _, parent_text = line.strip().partition(" ")
        with contextlib.suppress(ValueError):
            children[int(parent_text.strip())].append(int(pid_text))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            found.append(child)
            frontier.append(child)
    return found


def stop_spark(spark: SparkSession) -> None:
    """Stop every query, then the session; then any Python process Spark started that is still
    there (a streaming source's runner outlives `spark.stop()` when its query was not stopped,
    e.g. on Ctrl-C in the middle of a start)."""
    gateway = getattr(spark.sparkContext, "_gateway", None)
    process = getattr(gateway, "proc", None)
    spawned = _descendants(process.pid) if process is not None else []
    for query in spark.streams.active:
        with contextlib.suppress(Exception):
            query.stop()
    with contextlib.suppress(Exception):
        spark.stop()
    for pid in spawned:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


@dataclass
class RunningJob:
    name: str
    detector: BaseDetector | None
    queries: list[StreamingQuery] = field(default_factory=list)
    restarts: int = 0


class Jobs:
    """The four streaming jobs in one Spark session, each on its own checkpoint
    (`<checkpoint_root>/<job>`) with its own queries, as separate applications would run them.

    They start one after the other, in a background thread while the market already plays
    (they read the stream from TRIM_HORIZON, so they miss nothing): each Python source runner
    must connect back to the JVM within Spark's fixed 10 s, and started all at once on two busy
    cores some would not. A job whose query fails is restarted from its checkpoint, as EMR's
    retry policy would: its sinks are exactly-once per micro-batch, so nothing is written twice.
    """

    MAX_RESTARTS = 3
    START_TIMEOUT_S = 180.0

    def __init__(
        self, spark: SparkSession, settings: JobSettings, say: Callable[[str], None]
    ) -> None:
        from spark_jobs.common.registry import load_registry
        from spark_jobs.common.runner import ARCHIVER

        registry = load_registry()
        self.spark = spark
        self.settings = settings
        self.say = say
        self.jobs = [
            RunningJob(job, None if job == ARCHIVER else registry.by_job(job)) for job in JOBS
        ]
        self.started = 0
        self._stopping = False
        self._error: BaseException | None = None
        self._starter: threading.Thread | None = None

    @property
    def queries(self) -> list[StreamingQuery]:
        return [query for job in self.jobs for query in job.queries]

    def start_in_background(self) -> None:
        self._starter = threading.Thread(target=self._start_all, name="job-starter", daemon=True)
        self._starter.start()

    def _start_all(self) -> None:
        try:
            for job in self.jobs:
                if self._stopping:
                    return
                self._start(job)
                self.started += 1
                self.say(f"job {job.name} running ({', '.join(q.name for q in job.queries)})")
        except BaseException as exc:  # handed to the main thread by `check`
            self._error = exc

    @property
    def starting(self) -> bool:
        return self._starter is not None and self._starter.is_alive()

    def wait_started(self) -> None:
        if self._starter is not None:
            self._starter.join()
        self.check()

    def check(self) -> None:
        if self._error is not None:
            raise DemoError(f"the jobs did not start: {self._error}") from self._error

    def _start(self, job: RunningJob) -> None:
        from spark_jobs.common.runner import StreamingJob

        while True:
            job.queries = StreamingJob(self.spark, self.settings, job.name, job.detector).start()
            failure = self._wait_started(job)
            if failure is None:
                return
            self._restart_or_fail(job, failure)

    def _wait_started(self, job: RunningJob) -> str | None:
        """None once every query of the job has its source running (the Python source runner
        connected back to the JVM); else why the job failed."""
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while not self._stopping:
            for query in job.queries:
                if not query.isActive:
                    return _failure(query)
            if all(q.status["message"] != "Initializing sources" for q in job.queries):
                return None
            if time.monotonic() > deadline:
                return f"sources not initialized in {self.START_TIMEOUT_S:g} s"
            time.sleep(0.2)
        return None

    def _restart_or_fail(self, job: RunningJob, failure: str) -> None:
        stop_queries(job.queries)
        if job.restarts >= self.MAX_RESTARTS:
            raise DemoError(f"job {job.name} failed {job.restarts + 1} times; last: {failure}")
        job.restarts += 1
        self.say(
            f"job {job.name} failed ({failure}); restarting it from its checkpoint "
            f"(restart {job.restarts} of {self.MAX_RESTARTS})"
        )

    def supervise(self) -> None:
        """Restart every job one of whose queries has stopped (once they are all started)."""
        self.check()
        if self.starting:
            return
        for job in self.jobs:
            failed = [query for query in job.queries if not query.isActive]
            if failed:
                self._restart_or_fail(job, _failure(failed[0]))
                self._start(job)

    def drain(self) -> None:
        """Process everything the stream holds (and the windows the watermark closes), query by
        query; a job that fails meanwhile is restarted and the drain goes on."""
        from pyspark.errors import StreamingQueryException

        self.wait_started()
        pending = list(self.jobs)
        while pending:
            job = pending.pop(0)
            try:
                for query in job.queries:
                    query.processAllAvailable()
            except StreamingQueryException:
                self.supervise()
                pending.append(job)

    def batches(self) -> int:
        """Micro-batches done so far, all queries (restarts continue their numbering)."""
        total = 0
        for query in self.queries:
            # The Java object: StreamingQuery.lastProgress converts it field by field, dozens
            # of calls into the JVM for one number.
            progress = query._jsq.lastProgress()
            if progress is not None:
                total += int(progress.batchId()) + 1
        return total

    def save_progress(self, path: Path) -> None:
        """Spark's progress reports of the latest micro-batches of every query, as JSON lines
        (batch sizes, durations, watermarks, state: what to look at when it is slow)."""
        with path.open("w", encoding="utf-8") as out:
            for query in self.queries:
                for progress in query._jsq.recentProgress():  # one JVM call each, as JSON
                    out.write(str(progress.json()) + "\n")

    def stop(self) -> None:
        """Stop every query; one being created when this is called (Ctrl-C while the jobs
        start) is stopped once its creation returns, or with the session."""
        self._stopping = True
        stop_queries(self.queries)
        if self._starter is not None:
            self._starter.join(timeout=15)
        stop_queries(self.queries)


def _failure(query: StreamingQuery) -> str:
    error = query.exception()
    text = str(error).strip() if error is not None else ""
    return f"{query.name}: {text.splitlines()[0] if text else 'stopped'}"


def stop_queries(queries: Sequence[StreamingQuery]) -> None:
    """Stop them all at once (each stop waits for its query's thread to end)."""

    def stop(query: StreamingQuery) -> None:
        with contextlib.suppress(Exception):
            query.stop()

    if queries:
        with ThreadPoolExecutor(len(queries)) as pool:
            list(pool.map(stop, queries))


def alert_counts(dynamodb: Any) -> collections.Counter[str]:
    """Alerts in DynamoDB by type (the hot path: what a trader would see)."""
    counts: collections.Counter[str] = collections.Counter()
    request: dict[str, Any] = {"TableName": ALERTS_TABLE, "ProjectionExpression": "alert_type"}
    while True:
        page = dynamodb.scan(**request)
        counts.update(item["alert_type"]["S"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return counts
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def upstream_garbage(now: datetime) -> list[tuple[str, bytes]]:
    """A misbehaving upstream's records (partition key, data): an unknown symbol, a record that
    is not JSON and a negative price. The producer would never send them: it rejects malformed
    exchange frames before Kinesis."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def trade(symbol: str, trade_id: int, price: float) -> bytes:
        record = {
            "event_id": f"binance:{symbol}:{trade_id}",
            "exchange": "binance",
            "symbol": symbol,
            "price": price,
            "quantity": 10.0,
            "quote_volume": price * 10.0,
            "side": "buy",
            "timestamp": stamp,
            "ingestion_timestamp": stamp,
        }
        return json.dumps(record).encode()

    return [
        ("DOGE-USDT", trade("DOGE-USDT", 1, 0.25)),
        ("upstream", b'{"event_id": "binance:BTC-USDT:'),
        ("BTC-USDT", trade("BTC-USDT", 2, -60_000.0)),
    ]


def inject_garbage(kinesis: Any, now: datetime) -> int:
    records = [{"PartitionKey": key, "Data": data} for key, data in upstream_garbage(now)]
    response = kinesis.put_records(StreamName=STREAM, Records=records)
    return len(records) - int(response["FailedRecordCount"])


# --------------------------------------------------------------------------------------------
# Findings: the tables, read back
# --------------------------------------------------------------------------------------------


@dataclass
class Findings:
    """What the pipeline wrote, read back after the drain."""

    saved: dict[str, list[dict[str, Any]]]  # saved query name -> rows
    anomalies: list[dict[str, Any]]  # each anomaly, by z-score (an ad-hoc Athena query)
    alerts: list[dict[str, Any]]  # the Iceberg alerts table, whole
    volume: list[dict[str, Any]]  # volume_aggregates, whole (the charts)
    spreads: list[dict[str, Any]]  # spreads, whole (the charts)
    whales: list[dict[str, Any]]  # whale_trades, whole (the charts)
    archived: collections.Counter[str]  # raw_trades event ids -> rows
    dynamodb_alerts: collections.Counter[str] = field(default_factory=collections.Counter)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        by_type = collections.Counter(a["alert_type"] for a in self.alerts)
        return {name: by_type.get(kind, 0) for kind, name in KINDS.items()}


SAVED_QUERIES = (
    "alert_counts_by_type",
    "top_whales",
    "anomalies_by_symbol_hour",
    "widest_spreads",
    "dq_failure_rates",
)
ANOMALIES_SQL = """
SELECT window_start, symbol, exchange, total_quote_volume, baseline_mean, z_score
FROM crypto_pulse.anomalies
ORDER BY z_score DESC, window_start
"""


def read_findings(settings: JobSettings) -> Findings:
    from spark_jobs import queries
    from spark_jobs.common.iceberg import load_catalog

    catalog = load_catalog(settings)
    namespace = settings.tables.namespace

    def table(name: str, columns: tuple[str, ...] = ("*",)) -> list[dict[str, Any]]:
        scan = catalog.load_table(f"{namespace}.{name}").scan(selected_fields=columns)
        rows: list[dict[str, Any]] = scan.to_arrow().to_pylist()
        return rows

    saved: dict[str, list[dict[str, Any]]] = {}
    notes = []
    for name in SAVED_QUERIES:
        try:
            saved[name] = queries.run_query(name, settings, catalog=catalog)
        except queries.QueryError as exc:
            notes.append(f"saved query {name}: {exc}")
            saved[name] = []
    anomalies = queries.execute(ANOMALIES_SQL, settings, catalog=catalog).records()
    archived = collections.Counter(r["event_id"] for r in table("raw_trades", ("event_id",)))
    return Findings(
        saved=saved,
        anomalies=anomalies,
        alerts=table("alerts"),
        volume=table("volume_aggregates"),
        spreads=table("spreads"),
        whales=table("whale_trades"),
        archived=archived,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _when(value: Any) -> str:
    return _utc(value).strftime("%H:%M:%S") if isinstance(value, datetime) else str(value)


def summary_lines(findings: Findings) -> list[tuple[str, list[str]]]:
    """The printed summary: (heading, lines) per section, from the saved queries."""
    sections: list[tuple[str, list[str]]] = []
    by_type: collections.Counter[str] = collections.Counter()
    lines = []
    for row in findings.saved["alert_counts_by_type"]:
        by_type[row["alert_type"]] += row["alerts"]
        lines.append(
            f"{row['alert_type']:<13} {row['symbol']:<9} {row['alerts']:>4}   "
            f"{_when(row['first_event_time'])}-{_when(row['last_event_time'])}   "
            f"max metric {row['max_metric']:,.2f}"
        )
    lines.append("total  " + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items())))
    sections.append(("Alerts by type and symbol (saved query alert_counts_by_type)", lines))
    sections.append(
        (
            "Top whales (top_whales)",
            [
                f"{_when(w['timestamp'])}  {w['exchange']:<8} {w['symbol']:<9} {w['side']:<4} "
                f"{w['quote_volume']:>14,.2f} {w['quote_asset']}  {w['size_tier']}"
                for w in findings.saved["top_whales"]
            ],
        )
    )
    lines = [
        f"{_when(a['window_start'])}  {a['exchange']:<8} {a['symbol']:<9} "
        f"volume {a['total_quote_volume']:>13,.0f} vs mean {a['baseline_mean']:>11,.0f}  "
        f"z = {a['z_score']:6.1f}"
        for a in findings.anomalies[:10]
    ]
    if len(findings.anomalies) > 10:
        lines.append(f"… and {len(findings.anomalies) - 10} more")
    lines += [
        f"per hour: {h['symbol']} {_when(h['window_hour'])[:5]}  {h['anomalies']} anomalies, "
        f"max z {h['max_z_score']:.1f}"
        for h in findings.saved["anomalies_by_symbol_hour"]
    ]
    sections.append(("Volume anomalies by z-score (anomalies; anomalies_by_symbol_hour)", lines))
    sections.append(
        (
            "Widest spreads (widest_spreads)",
            [
                f"{_when(s['window_start'])}  {s['symbol']:<9} {s['spread_pct']:6.3f} %  "
                f"{s['high_exchange']} {s['max_vwap']:,.2f} over {s['low_exchange']} "
                f"{s['min_vwap']:,.2f}{'  ALERT' if s['is_alert'] else ''}"
                for s in findings.saved["widest_spreads"][:8]
            ],
        )
    )
    sections.append(
        (
            "Dead-letter queue (dq_failure_rates)",
            [
                f"{r['job']:<18} {r['reason']:<26} {r['failed_records']:>3} records"
                for r in findings.saved["dq_failure_rates"]
            ]
            or ["(empty)"],
        )
    )
    return sections


SERIES_COLORS = {
    ("binance", "BTC-USDT"): COLORS["binance"],
    ("coinbase", "BTC-USDT"): COLORS["coinbase"],
    ("binance", "ETH-USDT"): "#8c564b",
    ("coinbase", "ETH-USDT"): "#17becf",
    "BTC-USDT": "#ff7f0e",
    "ETH-USDT": "#2ca02c",
}


def _color(key: Any) -> str:
    return SERIES_COLORS.get(key, "#555")


def _compact(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e3:.0f}k"


def report_charts(
    findings: Findings, scenario: Scenario | None, threshold_pct: float
) -> list[Chart]:
    """Volume with anomalies, spreads with the threshold, whales on each symbol's price line;
    the scripted events shaded (simulated market only)."""
    volume_series: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    for row in findings.volume:
        key = (row["exchange"], row["symbol"])
        volume_series.setdefault(key, []).append(
            (_utc(row["window_start"]), row["total_quote_volume"])
        )
    bands: list[Band] = []
    if scenario is not None:
        for event in scenario.events:
            if isinstance(event, VolumeBurst | Dislocation | SilentGap):
                name = {VolumeBurst: "burst", Dislocation: "dislocation", SilentGap: "gap"}[
                    type(event)
                ]
                bands.append(
                    Band(
                        sim_time(scenario, event.start_s),
                        sim_time(scenario, event.end_s),
                        f"scripted {name} ({event.exchange})",
                    )
                )
    strongest = sorted(findings.anomalies, key=lambda a: -a["z_score"])[:3]
    volume = Chart(
        title="Per-minute quote volume per exchange and symbol, volume anomalies marked",
        y_label="quote volume (USDT, log)",
        series=[
            Series(f"{exchange} {symbol}", points, _color((exchange, symbol)))
            for (exchange, symbol), points in sorted(volume_series.items())
        ],
        markers=[
            Marker(
                _utc(a["window_start"]),
                a["total_quote_volume"],
                f"{a['exchange']} {a['symbol']} {_when(a['window_start'])}: z = {a['z_score']:.1f}",
                text=f"z={a['z_score']:.0f}" if a in strongest else None,
            )
            for a in findings.anomalies
        ],
        bands=[b for b in bands if "gap" in b.label or "burst" in b.label],
        log_y=True,
    )
    spread_series: dict[str, list[tuple[datetime, float]]] = {}
    for row in findings.spreads:
        spread_series.setdefault(row["symbol"], []).append(
            (_utc(row["window_start"]), row["spread_pct"])
        )
    spread_alerts = [s for s in findings.spreads if s["is_alert"]]
    spread = Chart(
        title="Cross-exchange spread per 30 s window, with the alert threshold",
        y_label="spread (%)",
        series=[
            Series(symbol, points, _color(symbol))
            for symbol, points in sorted(spread_series.items())
        ],
        markers=[
            Marker(
                _utc(s["window_start"]),
                s["spread_pct"],
                f"{s['symbol']} {_when(s['window_start'])}: {s['spread_pct']:.2f} % "
                f"({s['high_exchange']} over {s['low_exchange']})",
                text=f"{s['spread_pct']:.2f} %" if s is spread_alerts[0] else None,
            )
            for s in spread_alerts
        ],
        hline=(threshold_pct, f"threshold {threshold_pct:g} %"),
        bands=[b for b in bands if "dislocation" in b.label],
    )
    charts = [volume, spread]
    symbols = sorted({row["symbol"] for row in findings.volume})
    for symbol in symbols:
        per_minute: dict[datetime, tuple[float, float]] = {}
        for row in findings.volume:
            if row["symbol"] == symbol:
                start = _utc(row["window_start"])
                notional, size = per_minute.get(start, (0.0, 0.0))
                per_minute[start] = (
                    notional + row["vwap"] * row["total_volume"],
                    size + row["total_volume"],
                )
        price = [(t, n / q) for t, (n, q) in sorted(per_minute.items()) if q > 0]
        whales = [w for w in findings.whales if w["symbol"] == symbol]
        charts.append(
            Chart(
                title=f"Whales on the price line: {symbol}",
                y_label=f"{symbol} price (per-minute VWAP)",
                series=[Series(f"{symbol} VWAP", price, _color(symbol))],
                markers=[
                    Marker(
                        _utc(w["timestamp"]),
                        w["price"],
                        f"{w['exchange']} {w['side']} {w['quote_volume']:,.0f} "
                        f"{w['quote_asset']} at {w['price']:,.2f} ({w['size_tier']})",
                        radius=4 + 2 * math.log10(max(w["quote_volume"] / 1e5, 1.0)) * 3,
                        text=f"{w['side']} {_compact(w['quote_volume'])} ({w['exchange']})",
                    )
                    for w in whales
                ],
                y_from_zero=False,
            )
        )
    return charts


def report_tables(findings: Findings, checks: Sequence[CheckResult]) -> list[tuple[str, str]]:
    tables = []
    if checks:
        tables.append(
            (
                "The script, checked",
                html_table(
                    ["scripted", "found"],
                    [(c.what, c.found or "MISSED") for c in checks],
                ),
            )
        )
    tables.append(
        (
            "Alerts by type and symbol (alert_counts_by_type)",
            html_table(
                ["type", "symbol", "alerts", "first", "last", "max metric"],
                [
                    (
                        r["alert_type"],
                        r["symbol"],
                        r["alerts"],
                        _when(r["first_event_time"]),
                        _when(r["last_event_time"]),
                        f"{r['max_metric']:,.2f}",
                    )
                    for r in findings.saved["alert_counts_by_type"]
                ],
            ),
        )
    )
    tables.append(
        (
            "Top whales (top_whales)",
            html_table(
                ["time", "exchange", "symbol", "side", "price", "quote volume", "tier"],
                [
                    (
                        _when(w["timestamp"]),
                        w["exchange"],
                        w["symbol"],
                        w["side"],
                        f"{w['price']:,.2f}",
                        f"{w['quote_volume']:,.2f}",
                        w["size_tier"],
                    )
                    for w in findings.saved["top_whales"]
                ],
            ),
        )
    )
    tables.append(
        (
            "Volume anomalies by z-score",
            html_table(
                ["window", "exchange", "symbol", "quote volume", "baseline mean", "z-score"],
                [
                    (
                        _when(a["window_start"]),
                        a["exchange"],
                        a["symbol"],
                        f"{a['total_quote_volume']:,.0f}",
                        f"{a['baseline_mean']:,.0f}",
                        f"{a['z_score']:.2f}",
                    )
                    for a in findings.anomalies
                ],
            ),
        )
    )
    tables.append(
        (
            "Widest spreads (widest_spreads)",
            html_table(
                ["window", "symbol", "spread %", "high", "low", "alert"],
                [
                    (
                        _when(s["window_start"]),
                        s["symbol"],
                        f"{s['spread_pct']:.3f}",
                        f"{s['high_exchange']} {s['max_vwap']:,.2f}",
                        f"{s['low_exchange']} {s['min_vwap']:,.2f}",
                        "yes" if s["is_alert"] else "",
                    )
                    for s in findings.saved["widest_spreads"]
                ],
            ),
        )
    )
    tables.append(
        (
            "Dead-letter queue (dq_failure_rates)",
            html_table(
                ["job", "reason", "records"],
                [
                    (r["job"], r["reason"], r["failed_records"])
                    for r in findings.saved["dq_failure_rates"]
                ],
            ),
        )
    )
    return tables


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    minutes: float
    speed: float
    seed: int
    workdir: Path
    live: bool


_interrupted = threading.Event()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop everything. Once: a second one while the demo stops what it
    started would leave processes behind, so it is only acknowledged."""
    if _interrupted.is_set():
        print("demo: still stopping…", file=sys.stderr, flush=True)
        return
    _interrupted.set()
    print("\ndemo: interrupted; stopping everything it started…", file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def _clock(started: float) -> str:
    elapsed = int(time.monotonic() - started)
    return f"{elapsed // 60:2d}:{elapsed % 60:02d}"


def run_demo(options: Options) -> int:
    started = time.monotonic()
    workdir = options.workdir.resolve()
    fresh_workdir(workdir)
    settings = demo_settings(workdir, options.live)
    scenario = (
        None if options.live else demo_scenario(options.seed, options.minutes, current_minute())
    )
    if scenario is None:
        print(
            f"demo: LIVE exchanges for {options.minutes:g} minutes, local AWS; logs in {workdir}",
            flush=True,
        )
    else:
        print(
            f"demo: {options.minutes:g} simulated minutes from {scenario.start:%H:%M} UTC at "
            f"{options.speed:g}x, logs in {workdir}",
            flush=True,
        )
    with contextlib.ExitStack() as stack:
        aws = stack.enter_context(LocalAws(log_path=workdir / "moto.log"))
        env = aws.env()
        os.environ.update(env)  # the jobs' boto3 clients and the Spark workers use it
        import boto3

        kinesis = boto3.client("kinesis", region_name=env["AWS_REGION"])
        dynamodb = boto3.client("dynamodb", region_name=env["AWS_REGION"])
        tables = provision(settings, env["AWS_REGION"])
        print(
            f"  local AWS {aws.endpoint_url}: stream {STREAM}, DynamoDB table {ALERTS_TABLE}, "
            f"{len(tables)} Iceberg tables in {workdir / 'warehouse'}",
            flush=True,
        )
        producer_env = {
            **os.environ,
            "PRODUCER_STREAM_NAME": STREAM,
            "PRODUCER_SYMBOLS": json.dumps(SYMBOLS),
            "PRODUCER_RECONNECT_INITIAL_S": "0.1",
            "PRODUCER_RECONNECT_MAX_S": "1",
            "PRODUCER_SPILL_PATH": str(workdir / "spill.jsonl"),
        }
        gate = MarketGate()
        sim: SimulatorThread | None = None
        if scenario is not None:
            sim = stack.enter_context(SimulatorThread(scenario, speed=options.speed, clock=gate))
            producer_env.update(
                {
                    "PRODUCER_BINANCE_WS_URL": sim.binance_ws_url,
                    "PRODUCER_BINANCE_REST_URL": sim.binance_rest_url,
                    "PRODUCER_COINBASE_WS_URL": sim.coinbase_ws_url,
                    "PRODUCER_COINBASE_REST_URL": sim.coinbase_rest_url,
                }
            )
            print(
                f"  exchange simulator: binance {sim.binance_ws_url}, coinbase "
                f"{sim.coinbase_ws_url}",
                flush=True,
            )
        producer = stack.enter_context(ProducerProcess(producer_env, workdir / "producer.log"))
        print(f"[{_clock(started)}] starting Spark (one session, four jobs)…", flush=True)
        spark = start_spark(settings, workdir / "spark.log")
        stack.callback(stop_spark, spark)

        def say(message: str) -> None:
            print(f"[{_clock(started)}] {message}", flush=True)

        jobs = Jobs(spark, settings, say)
        stack.callback(jobs.stop)
        jobs.start_in_background()
        hint = " (no internet? --live needs the exchanges)" if options.live else ""
        producer.wait_ready(90.0, hint)
        gate.open()
        say("producer ready (both exchanges connected): the market opens; the jobs start")
        expected = play_market(options, started, sim, producer, jobs, kinesis, dynamodb)
        deadline = time.monotonic() + 60
        while expected is not None and time.monotonic() < deadline:  # the last backfills
            snapshot = producer.metrics()
            if snapshot and snapshot["published"] >= expected:
                break
            time.sleep(0.5)
        exit_code = producer.stop()
        counters = producer.final_counters()
        print(
            f"[{_clock(started)}] producer stopped (SIGTERM, exit code {exit_code}): "
            f"{counters.get('published', 0):,} trades published, "
            f"{counters.get('rejected', 0)} malformed exchange frames rejected, "
            f"{counters.get('reconnects', 0)} reconnects, "
            f"{counters.get('backfilled', 0):,} trades backfilled from REST",
            flush=True,
        )
        say("draining the jobs (the last windows close)…")
        jobs.drain()
        say(f"drained: {jobs.batches()} micro-batches in all")
        jobs.save_progress(workdir / "progress.jsonl")
        jobs.stop()
        say("reading the tables back through the saved queries…")
        findings = read_findings(settings)
        findings.dynamodb_alerts = alert_counts(dynamodb)
        trades = sim.trades() if sim is not None else []
        say("stopping Spark, the simulator and the local AWS endpoint…")
    # Everything is stopped here: the rest reads nothing but what was collected.
    print(f"[{_clock(started)}] stopped.", flush=True)
    checks: list[CheckResult] = []
    if scenario is not None:
        checks = check_script(scenario, trades, findings.alerts, findings.archived, 30)
    report_path = workdir / "report.html"
    return finish(options, scenario, findings, checks, counters, exit_code, report_path, started)


def play_market(
    options: Options,
    started: float,
    sim: SimulatorThread | None,
    producer: ProducerProcess,
    jobs: Jobs,
    kinesis: Any,
    dynamodb: Any,
) -> int | None:
    """Show progress until the market ends (live: `minutes` real minutes); inject the upstream's
    garbage halfway. Returns how many trades the exchanges emitted (None when live)."""
    end_s = options.minutes * 60
    opened = time.monotonic()
    injected = False
    while True:
        if not producer.alive():
            raise DemoError(f"the producer exited early; see {producer.log_path}")
        jobs.supervise()
        if sim is not None:
            sim_s = sim.sim_time_s
            done = sim.market_ended
            now = sim_time(sim.scenario, min(sim_s, end_s))
        else:
            sim_s = time.monotonic() - opened
            done = sim_s >= end_s
            now = datetime.now(UTC)
        progress = min(100.0, 100 * sim_s / end_s)
        if not injected and progress >= 50:
            injected = True
            count = inject_garbage(kinesis, now)
            print(
                f"[{_clock(started)}]   a misbehaving upstream puts {count} bad records on the "
                "stream (unknown symbol, not JSON, negative price)",
                flush=True,
            )
        snapshot = producer.metrics() or {}
        alerts = alert_counts(dynamodb)
        starting = f"jobs up {jobs.started}/{len(jobs.jobs)}, " if jobs.starting else ""
        print(
            f"[{_clock(started)}] market {progress:5.1f}% ({now:%H:%M} UTC)  "
            f"trades in {snapshot.get('published', 0):>7,}  "
            f"{starting}batches {jobs.batches():>4}  alerts {sum(alerts.values()):>3} "
            f"(volume {alerts['VOLUME_SPIKE']}, whale {alerts['WHALE_TRADE']}, "
            f"spread {alerts['WIDE_SPREAD']})",
            flush=True,
        )
        if done:
            break
        time.sleep(PROGRESS_EVERY_S)
    if sim is None:
        return None
    return sum(len(ids) for ids in sim.emitted().values())


def finish(
    options: Options,
    scenario: Scenario | None,
    findings: Findings,
    checks: Sequence[CheckResult],
    counters: dict[str, Any],
    producer_exit: int,
    report_path: Path,
    started: float,
) -> int:
    print("\nWhat the pipeline found, read back from the Iceberg tables (ddl/queries/):")
    for heading, lines in summary_lines(findings):
        print(f"\n{heading}:")
        for line in lines:
            print(f"  {line}")
    for note in findings.notes:
        print(f"  note: {note}")
    counts = findings.counts()
    hot = sum(findings.dynamodb_alerts.values())
    print(
        f"\nDynamoDB (hot path) holds {hot} alerts, the Iceberg alerts table "
        f"{len(findings.alerts)} (each alert written once to each)."
    )
    ok = producer_exit == 0 and hot == len(findings.alerts)
    if checks:
        print("\nThe script, checked against the findings:")
        for check in checks:
            print(f"  {'ok    ' if check.ok else 'MISSED'} {check.what}: {check.found or '-'}")
        missed = [c for c in checks if not c.ok]
        ok = ok and not missed
        print(
            "Every scripted event was found."
            if not missed
            else f"{len(missed)} scripted event(s) NOT found."
        )
    from spark_jobs.common.registry import load_registry

    threshold = float(load_registry().get("MOD-003").params["threshold_pct"])
    summary = [
        f"{'live exchanges' if scenario is None else 'simulated market'}: "
        f"{options.minutes:g} minutes"
        + (f" from {scenario.start:%Y-%m-%d %H:%M} UTC at {options.speed:g}x" if scenario else ""),
        f"{counters.get('published', 0):,} trades published by the producer; "
        f"{len(findings.archived):,} archived in raw_trades",
        "alerts: " + ", ".join(f"{name} {n}" for name, n in counts.items()),
        f"dead-letter queue: {sum(r['failed_records'] for r in findings.saved['dq_failure_rates'])}"
        " records (a misbehaving upstream's bad records, seen by each of the four jobs)",
    ]
    if checks:
        summary.append(
            f"script check: {sum(c.ok for c in checks)} of {len(checks)} found"
            + ("" if all(c.ok for c in checks) else " — SOMETHING WAS MISSED")
        )
    page = render_report(
        "crypto_pulse demo — what the pipeline found",
        summary,
        report_charts(findings, scenario, threshold),
        report_tables(findings, checks),
    )
    report_path.write_text(page, encoding="utf-8")
    workdir = report_path.parent
    tables = (
        "DEMO=1"
        if workdir == DEFAULT_WORKDIR.resolve()
        else f"CRYPTO_PULSE_TABLES__CATALOG={CATALOG} CRYPTO_PULSE_TABLES__WAREHOUSE="
        f"{workdir / 'warehouse'} CRYPTO_PULSE_RAW_ZONE={workdir / 'raw'}"
    )
    print(f"\nAsk the tables yourself: make query Q=latest_whales {tables}  (make query lists all)")
    print(f"Report: {report_path}  (took {_clock(started).strip()} min:s)")
    print(
        f"demo: volume_anomaly={counts['volume_anomaly']} whale={counts['whale']} "
        f"spread={counts['spread']} report={report_path}",
        flush=True,
    )
    return 0 if ok else 1


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes",
        type=float,
        help=f"simulated market minutes (default {DEFAULT_MINUTES:g}; at least "
        f"{MIN_MINUTES:g}); --live: real minutes (default {LIVE_MINUTES:g})",
    )
    parser.add_argument(
        "--speed",
        type=float,
        help=f"simulated seconds per real second (default {DEFAULT_SPEED:g})",
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help=f"{SHORT_MINUTES:g} simulated minutes at {SHORT_SPEED:g}x (about two minutes)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulated market's seed")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="logs, warehouse, raw zone, checkpoints and the report (default var/demo)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="the live exchanges instead of the simulator (internet needed; no script check)",
    )
    args = parser.parse_args(argv)
    if args.live and (args.short or args.speed is not None):
        parser.error("--live runs in real time: no --short or --speed")
    minutes = args.minutes
    speed = args.speed
    if minutes is None:
        minutes = LIVE_MINUTES if args.live else SHORT_MINUTES if args.short else DEFAULT_MINUTES
    if speed is None:
        speed = SHORT_SPEED if args.short else DEFAULT_SPEED
    if not args.live and minutes < MIN_MINUTES:
        parser.error(f"--minutes must be at least {MIN_MINUTES:g} (the script needs them)")
    if minutes <= 0 or speed <= 0:
        parser.error("--minutes and --speed must be > 0")
    return Options(minutes, 1.0 if args.live else speed, args.seed, args.workdir, args.live)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return run_demo(options)
    except KeyboardInterrupt:
        print("demo: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    except DemoError as exc:
        print(f"\ndemo: failed: {exc}; everything it started was stopped", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
