"""Whale alert latency on the live pipeline: the exchange simulator in real time at a steady
rate, the producer as it runs in production (`python -m producer run`, its own process), the
local Kinesis stream, the whale job streaming, DynamoDB.

A whale is scripted every `WHALE_EVERY_S` seconds after a warm-up; its latency is the time from
its trade timestamp (the exchange clock: the simulator's trade times are this machine's wall
clock) to the moment its alert item is first seen in DynamoDB (polled every `POLL_S`, so the
figure is late by `POLL_S / 2` on average). The alert's `detected_at` (the job's batch time)
splits that into "until the job saw it" and "writing the alert".
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from bench import frames as market
from bench.measure import Figure, Section
from devstack.aws import REPO_ROOT, LocalAws, free_port
from devstack.demo import ProducerProcess
from devstack.provision import ensure_alerts_table, ensure_iceberg, ensure_stream
from devstack.simulator import Scenario, SimulatorThread, Whale
from spark_jobs.common.registry import load_registry
from spark_jobs.common.runner import StreamingJob
from spark_jobs.common.session import build_session

STREAM = "bench-live-trades"
ALERTS_TABLE = "bench-live-alerts"
WARMUP_S = 25.0
MEASURE_S = 60.0
WHALE_EVERY_S = 2.0
POLL_S = 0.1
SETTLE_S = 20.0  # after the last whale, how long to wait for its alert


def live_scenario(start: datetime) -> Scenario:
    """The benchmark market from `start` (now), a whale every `WHALE_EVERY_S` after the
    warm-up, alternating exchanges."""
    count = int(MEASURE_S // WHALE_EVERY_S)
    whales = [
        Whale(
            at_s=WARMUP_S + i * WHALE_EVERY_S,
            exchange=("binance", "coinbase")[i % 2],
            symbol="BTC-USDT",
            quote_volume=market.WHALE_QUOTE_VOLUME,
        )
        for i in range(count)
    ]
    return Scenario(
        seed=23,
        start=start,
        symbols=market.SYMBOLS,
        events=whales,
        duration_s=WARMUP_S + MEASURE_S + SETTLE_S,
    )


# What a whale job's batch does, by the functions that do it (driver side, foreachBatch), in the
# order it does them: the whale job is one query (a stateless detector detects inside the
# quality query's batches).
TIMED = (
    ("spark_jobs.common.quality", "DataQualityChecker", "split", "split the batch (plans only)"),
    (
        "spark_jobs.common.runner",
        None,
        "route_records",
        "read the batch, detect, route (the 3 rows below)",
    ),
    ("spark_jobs.common.runner", "AlertRouter", "route", "route the whales (DynamoDB + Iceberg)"),
    ("spark_jobs.common.runner", None, "put_alerts", "DynamoDB puts"),
    ("spark_jobs.common.iceberg", "IcebergSink", "append", "an Iceberg append"),
    (
        "spark_jobs.common.quality",
        "DataQualityChecker",
        "_measure",
        "quality metrics (observed by the detection's read)",
    ),
    ("spark_jobs.common.dlq", "DlqWriter", "write", "write the DLQ"),
)


@contextlib.contextmanager
def timing() -> Iterator[dict[str, list[float]]]:
    """Time the `TIMED` functions while the block runs (wrapped, then restored)."""
    spans: dict[str, list[float]] = {label: [] for *_, label in TIMED}
    lock = threading.Lock()
    restore: list[tuple[Any, str, Any]] = []

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    spans[label].append(time.perf_counter() - start)

        return wrapper

    for module_name, class_name, name, label in TIMED:
        module = importlib.import_module(module_name)
        owner = getattr(module, class_name) if class_name else module
        original = getattr(owner, name)
        restore.append((owner, name, original))
        setattr(owner, name, timed(original, label))
    try:
        yield spans
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def watch_alerts(
    dynamodb: Any, expected: int, deadline: float, clock: Callable[[], float] = time.time
) -> dict[str, dict[str, float]]:
    """Poll the alerts table until `expected` whale alerts are there or `deadline` (wall clock);
    returns alert id -> {seen, event_time, detected_at} as epoch seconds."""
    seen: dict[str, dict[str, float]] = {}
    while len(seen) < expected and clock() < deadline:
        now = clock()
        pages = dynamodb.get_paginator("scan").paginate(TableName=ALERTS_TABLE)
        for page in pages:
            for item in page["Items"]:
                alert_id = item["alert_id"]["S"]
                if alert_id not in seen:
                    seen[alert_id] = {
                        "seen": now,
                        "event_time": _parse_time(item["event_time"]["S"]),
                        "detected_at": _parse_time(item["detected_at"]["S"]),
                    }
        time.sleep(POLL_S)
    return seen


def run_latency(section: Section, workdir: Path, log: Callable[[str], None] = print) -> None:
    """`whale_alert_latency_p50_s` and `whale_alert_latency_p95_s`."""
    shutil.rmtree(workdir, ignore_errors=True)  # a checkpoint of an earlier run's stream
    workdir.mkdir(parents=True)
    with LocalAws(log_path=workdir / "moto.log") as aws:
        env = aws.env()
        os.environ.update(env)
        region = env["AWS_REGION"]
        ensure_stream(boto3.client("kinesis", region_name=region), STREAM, shards=2)
        dynamodb = boto3.client("dynamodb", region_name=region)
        ensure_alerts_table(dynamodb, ALERTS_TABLE)
        settings = market.job_settings(
            workdir,
            {"name": STREAM, "starting_position": "TRIM_HORIZON"},
            ALERTS_TABLE,
            catalog="crypto_pulse_bench_live",
        )
        ensure_iceberg(settings)
        spark = build_session(settings, "crypto-pulse-bench-latency")
        spark.sparkContext.setLogLevel("ERROR")
        binance_port, coinbase_port = free_port(), free_port()
        producer_env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PRODUCER_STREAM_NAME": STREAM,
            "PRODUCER_SYMBOLS": json.dumps(market.symbol_map()),
            "PRODUCER_BINANCE_WS_URL": f"ws://127.0.0.1:{binance_port}",
            "PRODUCER_BINANCE_REST_URL": f"http://127.0.0.1:{binance_port}",
            "PRODUCER_COINBASE_WS_URL": f"ws://127.0.0.1:{coinbase_port}",
            "PRODUCER_COINBASE_REST_URL": f"http://127.0.0.1:{coinbase_port}",
            "PRODUCER_RECONNECT_INITIAL_S": "0.1",
            "PRODUCER_RECONNECT_MAX_S": "0.5",
            "PRODUCER_HEALTH_HOST": "127.0.0.1",
            "PRODUCER_HEALTH_PORT": str(free_port()),
        }
        streaming = StreamingJob(
            spark, settings, "whale_detector", load_registry().by_job("whale_detector")
        )
        with contextlib.ExitStack() as stack:
            spans = stack.enter_context(timing())
            queries = streaming.start()
            for query in queries:
                stack.callback(query.stop)
            with ProducerProcess(producer_env, workdir / "producer.log"):
                # The market starts now: its trade times are this machine's clock.
                scenario = live_scenario(datetime.now(UTC))
                whales = len(scenario.events)
                with SimulatorThread(
                    scenario, speed=1.0, binance_port=binance_port, coinbase_port=coinbase_port
                ):
                    log(
                        f"latency: live market for {WARMUP_S + MEASURE_S:.0f} s, "
                        f"{whales} whales after {WARMUP_S:.0f} s of warm-up"
                    )
                    end = time.time() + WARMUP_S + MEASURE_S + SETTLE_S
                    alerts = watch_alerts(dynamodb, whales, end)
            progress = [p for q in queries for p in q.recentProgress]
    if not alerts:
        note = "no whale alert reached DynamoDB: see var/bench/latency/producer.log"
        for key in ("whale_alert_latency_p50_s", "whale_alert_latency_p95_s"):
            section.add(Figure(key, [], "s", "", note=note))
        return
    total = sorted(a["seen"] - a["event_time"] for a in alerts.values())
    to_batch = sorted(a["detected_at"] - a["event_time"] for a in alerts.values())
    to_item = sorted(a["seen"] - a["detected_at"] for a in alerts.values())
    method = (
        f"Live: simulator in real time ({market.TRADES_PER_SIM_S:.0f} trades/s over 6 products), "
        "`python -m producer run` with its default settings, a 2-shard local stream, the whale "
        f"job streaming (trigger 0 s), DynamoDB polled every {POLL_S:g} s. "
        f"{len(alerts)} of {whales} whales alerted; trade timestamp -> alert item first seen"
    )
    p50, p95 = percentile(total, 50), percentile(total, 95)
    section.add(Figure("whale_alert_latency_p50_s", [p50], "s", f"{method} (median)."))
    section.add(Figure("whale_alert_latency_p95_s", [p95], "s", f"{method} (95th percentile)."))
    section.details["latency"] = {
        "whales": whales,
        "alerted": len(alerts),
        "latencies_s": [round(x, 3) for x in total],
        "trade_to_detected_at_p50_s": round(percentile(to_batch, 50), 3),
        "trade_to_detected_at_p95_s": round(percentile(to_batch, 95), 3),
        "detected_at_to_item_p50_s": round(percentile(to_item, 50), 3),
        "detected_at_to_item_p95_s": round(percentile(to_item, 95), 3),
        "batches": len([p for p in progress if p.numInputRows]),
        "inside_a_batch_ms": {
            label: {
                "calls": len(times),
                "median": round(statistics.median(times) * 1000) if times else None,
                "p90": round(percentile(times, 90) * 1000) if times else None,
            }
            for label, times in spans.items()
        },
        "batch_durations_ms_median": {
            key: statistics.median([int(p.durationMs.get(key, 0)) for p in progress] or [0])
            for key in ("latestOffset", "addBatch", "triggerExecution")
        },
    }


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
