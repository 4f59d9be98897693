"""Exactly once across a crash (SPEC §10): a streaming job killed with SIGKILL in the middle of a
micro-batch and restarted on its checkpoint leaves each alert once in DynamoDB and each row once
in every Iceberg table, none missing; each bad record once in the DLQ.

The jobs run as real processes (`python -m spark_jobs.<job>`, Spark's JVM and its Python workers
as children, all in one process group) against the local AWS endpoint, with a stream, alerts
table, warehouse, raw zone and checkpoint root of their own (`CRYPTO_PULSE_*` variables). Trades
are put on the stream in waves while the job runs; the process group is killed at a moment where
a batch's outputs are partly written (some of its alerts in DynamoDB, or its DLQ files written
but its rows not yet in Iceberg); more trades arrive while it is down; the job is restarted with
`--until-drained` and the sinks are checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyiceberg.exceptions import NoSuchTableError

from devstack.provision import ensure_alerts_table, ensure_stream
from spark_jobs.common.dynamodb import iso_utc
from spark_jobs.common.settings import REPO_ROOT, JobSettings, load_job_settings
from tests.spark_jobs.jvm import SPARK_CONF
from tests.spark_jobs.test_jobs import event, put, table_rows

# Generous: a busy machine slows Spark a lot (a JVM start and a first batch can take a minute).
STARTUP_TIMEOUT_S = 180.0  # JVM start, first batch, first outputs
WAVE_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = 240.0

Record = dict[str, Any] | str

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),  # two job processes per test, each a JVM start
    pytest.mark.skipif(
        not Path("/proc").is_dir(), reason="finds Spark's processes through /proc (Linux)"
    ),
]


# --- Helpers -------------------------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        table[int(entry.name)] = (int(ppid), int(pgrp), state)
    return table


def process_groups(root: int) -> set[int]:
    """The process groups of `root` and its descendants: its own, and the ones pyspark's worker
    daemons make for themselves (`os.setpgid(0, 0)`), out of reach of a kill of `root`'s."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    groups, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            groups.add(table[child][1])
            todo.append(child)
    return groups


def live_groups(groups: set[int]) -> set[int]:
    """Those of `groups` that a running process still belongs to (zombies do not count)."""
    return {
        pgrp
        for _, pgrp, state in process_table().values()
        if pgrp in groups and state not in ("Z", "X")
    }


@dataclass
class Wave:
    """Records to put on the stream, and what the sinks must hold because of them."""

    records: list[Record] = field(default_factory=list)
    whales: set[str] = field(default_factory=set)  # alert ids
    valid: set[str] = field(default_factory=set)  # event ids of the trades that pass quality
    bad: list[str] = field(default_factory=list)  # raw record texts bound for the DLQ


def make_wave(number: int, whales: int, small: int) -> Wave:
    """`whales` trades over the whale threshold, `small` under it and three bad records, spread
    over both symbols and exchanges (so over both shards); every id unique to the wave."""
    wave = Wave()
    base = number * 100_000
    places = [
        ("binance", "BTC-USDT"),
        ("coinbase", "BTC-USDT"),
        ("binance", "ETH-USDT"),
        ("coinbase", "ETH-USDT"),
    ]
    for i in range(whales + small):
        exchange, symbol = places[i % len(places)]
        is_whale = i < whales
        trade = event(
            number * 60 + i * 0.01,
            base + i,
            price=50_000.0 + i if is_whale else 100.0,
            quantity=3.0 if is_whale else 1.0,  # 150 000+ or 100
            exchange=exchange,
            symbol=symbol,
        )
        wave.records.append(trade)
        wave.valid.add(trade["event_id"])
        if is_whale:
            wave.whales.add(f"whale:{trade['event_id']}")
    bad: list[Record] = [
        f"{{not json, wave {number}",
        event(number * 60, base + 90_001, symbol="DOGE-USDT"),
        {**event(number * 60, base + 90_002), "price": -1.0},
    ]
    wave.records.extend(bad)
    wave.bad.extend(r if isinstance(r, str) else json.dumps(r) for r in bad)
    return wave


def union(waves: list[Wave], what: str) -> set[str]:
    return set().union(*(getattr(w, what) for w in waves))


@dataclass
class CrashStack:
    """A stream, alerts table, warehouse, raw zone and checkpoint root for one test, the job
    processes started on them (killed at teardown if still running) and the sinks' contents."""

    settings: JobSettings
    env: dict[str, str]
    kinesis: Any
    dynamodb: Any
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_files: dict[int, Path] = field(default_factory=dict)  # by pid

    def start(self, job: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{job}-{len(self.processes)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"spark_jobs.{job}", *args],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the JVM and workers with it
            )
        self.processes.append(process)
        self.log_files[process.pid] = log
        return process

    def log_tail(self, process: subprocess.Popen[bytes], lines: int = 40) -> str:
        log = self.log_files[process.pid]
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        return f"--- {log} (last {lines} lines)\n" + "\n".join(text[-lines:])

    def kill(self, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
        """A crash: SIGKILL the job's process group (the driver, Spark's JVM and what it started)
        and the groups of pyspark's worker daemons, then wait until none of them runs."""
        groups = process_groups(process.pid)  # before the kill: it orphans the daemons
        for pgid in sorted(groups, key=lambda group: group != process.pid):  # the job's first
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while alive := live_groups(groups):
            if time.monotonic() > deadline:
                raise TimeoutError(f"process groups {sorted(alive)} still run after SIGKILL")
            time.sleep(0.05)

    def wait_for(
        self,
        process: subprocess.Popen[bytes],
        condition: Callable[[], bool],
        what: str,
        timeout_s: float = WAVE_TIMEOUT_S,
        interval_s: float = 0.2,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if process.poll() is not None:
                pytest.fail(
                    f"job exited ({process.returncode}) waiting for {what}\n"
                    + self.log_tail(process)
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout_s} s\n" + self.log_tail(process))
            time.sleep(interval_s)

    def drain(self, job: str) -> None:
        """Restart `job` on its checkpoint with `--until-drained`; it must exit 0."""
        process = self.start(job, "--until-drained")
        try:
            code = process.wait(timeout=DRAIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill(process)
            pytest.fail(
                f"{job} --until-drained still running after {DRAIN_TIMEOUT_S} s\n"
                + self.log_tail(process)
            )
        assert code == 0, self.log_tail(process)

    def put(self, wave: Wave) -> None:
        put(self.kinesis, self.settings.stream.name, wave.records)

    # The sinks' contents.

    def alert_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.settings.alerts.dynamodb_table
        )
        for page in pages:
            items.extend(page["Items"])
        return items

    def alert_count(self) -> int:
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.settings.alerts.dynamodb_table, Select="COUNT"
        )
        return sum(page["Count"] for page in pages)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The table's rows; none before the job has created it."""
        try:
            return table_rows(self.settings, table)
        except NoSuchTableError:
            return []

    def dlq_raws(self) -> list[str]:
        """The `raw` of every DLQ line (manifests and half-written temporary files aside)."""
        raws = []
        for path in sorted(Path(self.settings.raw_zone, "dlq").glob("*/dt=*/*.jsonl")):
            with contextlib.suppress(FileNotFoundError):  # a stale file deleted meanwhile
                raws.extend(json.loads(line)["raw"] for line in path.read_text().splitlines())
        return raws


@pytest.fixture
def crash_stack(
    tmp_path: Path, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CrashStack]:
    suffix = uuid.uuid4().hex[:8]
    overrides = {
        "STREAM__NAME": f"trades-{suffix}",
        "STREAMING__CHECKPOINT_ROOT": str(tmp_path / "checkpoints"),
        "STREAMING__TRIGGER_INTERVAL_S": "0.5",
        "RAW_ZONE": str(tmp_path / "raw"),
        # A catalog name no pyiceberg configuration knows: the local SQLite catalog, always.
        "TABLES__CATALOG": f"crash_{suffix}",
        "TABLES__WAREHOUSE": str(tmp_path / "warehouse"),
        "ALERTS__DYNAMODB_TABLE": f"alerts-{suffix}",
        "SPARK__SHUFFLE_PARTITIONS": "1",
        "SPARK__CONF": json.dumps({"spark.ui.showConsoleProgress": "false", **SPARK_CONF}),
        "METRICS__CLOUDWATCH": "false",  # not under test; fewer calls to the local endpoint
    }
    for key, value in overrides.items():
        monkeypatch.setenv(f"CRYPTO_PULSE_{key}", value)
    settings = load_job_settings()  # what the job processes will load
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    kinesis = boto3.client("kinesis", region_name=aws_env["AWS_REGION"])
    dynamodb = boto3.client("dynamodb", region_name=aws_env["AWS_REGION"])
    ensure_stream(kinesis, settings.stream.name, shards=2)
    ensure_alerts_table(dynamodb, settings.alerts.dynamodb_table)
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = CrashStack(settings, env, kinesis, dynamodb, logs)
    try:
        yield stack
    finally:
        for process in stack.processes:
            if process.poll() is None:
                stack.kill(process)


# --- Tests ---------------------------------------------------------------------------------------


def test_whale_job_killed_mid_batch_writes_every_alert_exactly_once(
    crash_stack: CrashStack,
) -> None:
    stack = crash_stack
    waves = [
        make_wave(1, whales=40, small=40),
        make_wave(2, whales=40, small=40),
        make_wave(3, whales=150, small=40),  # the batch the crash cuts: seconds of DynamoDB puts
        make_wave(4, whales=40, small=40),  # put while the job is down
    ]
    job = stack.start("whale_detector")

    # Two waves fully processed: batches committed before the crash.
    for n in (0, 1):
        stack.put(waves[n])
        done = len(union(waves[: n + 1], "whales"))
        stack.wait_for(
            job,
            lambda done=done: stack.alert_count() >= done,
            f"alerts of wave {n + 1} in DynamoDB",
            timeout_s=STARTUP_TIMEOUT_S if n == 0 else WAVE_TIMEOUT_S,
        )

    # Wave 3: kill as soon as some (ideally not all) of its alerts are in DynamoDB: the batch's
    # whale_trades commit is done, its DynamoDB puts are under way, its `alerts` commit and the
    # checkpoint's commit are not.
    before = len(union(waves[:2], "whales"))
    stack.put(waves[2])
    stack.wait_for(
        job, lambda: stack.alert_count() > before, "alerts of wave 3 in DynamoDB", interval_s=0.01
    )
    stack.kill(job)
    crashed = {
        "dynamodb": stack.alert_count() - before,
        "whale_trades": len(stack.rows("whale_trades")) - before,
        "alerts": len(stack.rows("alerts")) - before,
        "of": len(waves[2].whales),
    }
    print(f"wave-3 outputs at the crash: {crashed}")

    stack.put(waves[3])
    stack.drain("whale_detector")

    expected = union(waves, "whales")
    items = stack.alert_items()
    dynamo_ids = Counter(item["alert_id"]["S"] for item in items)
    assert set(dynamo_ids) == expected, (
        f"missing {sorted(expected - set(dynamo_ids))[:5]}, extra "
        f"{sorted(set(dynamo_ids) - expected)[:5]} (crash state {crashed})"
    )
    assert len(items) == len(expected)
    detected = {item["alert_id"]["S"]: item["detected_at"]["S"] for item in items}
    for table in ("whale_trades", "alerts"):
        rows = stack.rows(table)
        counts = Counter(row["alert_id"] for row in rows)
        twice = sorted(a for a, c in counts.items() if c > 1)
        assert not twice, f"{table}: {len(twice)} alert ids more than once, e.g. {twice[:5]}"
        assert set(counts) == expected, (
            f"{table}: missing {sorted(expected - set(counts))[:5]}, extra "
            f"{sorted(set(counts) - expected)[:5]} (crash state {crashed})"
        )
        # The same alert everywhere: a replayed batch keeps its detection time.
        differ = sorted(
            r["alert_id"] for r in rows if iso_utc(r["detected_at"]) != detected[r["alert_id"]]
        )
        assert not differ, f"{table}: detected_at differs from DynamoDB's for {differ[:5]}"

    dlq = Counter(stack.dlq_raws())
    assert dlq == Counter(raw for wave in waves for raw in wave.bad), dlq


def test_archiver_killed_mid_batch_archives_every_trade_exactly_once(
    crash_stack: CrashStack,
) -> None:
    stack = crash_stack
    waves = [
        make_wave(1, whales=10, small=90),
        make_wave(2, whales=10, small=90),
        make_wave(3, whales=10, small=290),  # the batch the crash cuts
        make_wave(4, whales=10, small=90),  # put while the job is down
    ]
    job = stack.start("trade_archiver")
    for n in (0, 1):
        stack.put(waves[n])
        done = len(union(waves[: n + 1], "valid"))
        stack.wait_for(
            job,
            lambda done=done: len(stack.rows("raw_trades")) >= done,
            f"rows of wave {n + 1} in raw_trades",
            timeout_s=STARTUP_TIMEOUT_S if n == 0 else WAVE_TIMEOUT_S,
        )

    # Wave 3: the quality batch writes its DLQ files, then appends its valid trades to
    # raw_trades; kill as soon as the DLQ files are there.
    stack.put(waves[2])
    stack.wait_for(
        job,
        lambda: set(waves[2].bad) <= set(stack.dlq_raws()),
        "DLQ files of wave 3",
        interval_s=0.01,
    )
    stack.kill(job)
    before = len(union(waves[:2], "valid"))
    crashed = {"raw_trades": len(stack.rows("raw_trades")) - before, "of": len(waves[2].valid)}
    print(f"wave-3 outputs at the crash: {crashed}")

    stack.put(waves[3])
    stack.drain("trade_archiver")

    expected = union(waves, "valid")
    counts = Counter(row["event_id"] for row in stack.rows("raw_trades"))
    twice = sorted(e for e, c in counts.items() if c > 1)
    assert not twice, f"raw_trades: {len(twice)} trades more than once, e.g. {twice[:5]}"
    assert set(counts) == expected, (
        f"raw_trades: missing {sorted(expected - set(counts))[:5]}, extra "
        f"{sorted(set(counts) - expected)[:5]} (crash state {crashed})"
    )
    dlq = Counter(stack.dlq_raws())
    assert dlq == Counter(raw for wave in waves for raw in wave.bad), dlq
