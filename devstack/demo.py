"""`make demo`: the pipeline on one machine, with nothing but Python.

Starts the local AWS endpoint and the exchange simulator (a scripted market played faster than
real time, with dropped connections, skipped trade ids and malformed frames injected), provisions
the stream, runs the producer as users run it (`python -m producer run`, a separate process),
shows progress, stops it with SIGTERM, and reads back what reached Kinesis.

    python -m devstack.demo [--speed 30] [--minutes 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack.aws import REPO_ROOT, LocalAws, free_port
from devstack.provision import ensure_stream, read_stream
from devstack.simulator import (
    DropConnections,
    Malformed,
    Scenario,
    SilentGap,
    SimulatorThread,
    SkipTradeIds,
    SymbolSpec,
    VolumeBurst,
    Whale,
)

STREAM = "crypto-pulse-trades"
SYMBOLS = {
    "BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"},
    "ETH-USDT": {"binance": "ETHUSDT", "coinbase": "ETH-USD"},
}
# A short quiet spell after the market opens.
QUIET_S = 15.0


def demo_scenario(seed: int, minutes: float) -> Scenario:
    duration_s = QUIET_S + minutes * 60
    return Scenario(
        seed=seed,
        symbols=(
            SymbolSpec(trades_per_s=4.0),
            SymbolSpec(
                symbol="ETH-USDT",
                binance="ETHUSDT",
                coinbase="ETH-USD",
                base_price=3_000.0,
                trades_per_s=3.0,
            ),
        ),
        events=(
            SilentGap(start_s=0.0, duration_s=QUIET_S),
            Whale(
                at_s=QUIET_S + 0.3 * minutes * 60,
                exchange="binance",
                symbol="BTC-USDT",
                quote_volume=750_000.0,
            ),
            VolumeBurst(
                start_s=QUIET_S + 0.6 * minutes * 60,
                duration_s=60.0,
                multiplier=6.0,
                exchange="coinbase",
                symbol="BTC-USDT",
            ),
        ),
        faults=(
            DropConnections(every_n_trades=600),
            SkipTradeIds(at_trade=450, count=12, exchange="binance"),
            SkipTradeIds(at_trade=700, count=8, exchange="coinbase"),
            Malformed(at_trade=300, exchange="binance"),
            Malformed(at_trade=350, exchange="coinbase"),
        ),
        duration_s=duration_s,
    )


class MarketGate:
    """The simulator's real-time clock, held at zero until `open()`: the market opens once the
    producer is ready, so "every trade the exchanges emitted" is the right expectation."""

    def __init__(self) -> None:
        self._opened_at: float | None = None

    def __call__(self) -> float:
        return 0.0 if self._opened_at is None else time.monotonic() - self._opened_at

    def open(self) -> None:
        self._opened_at = time.monotonic()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def metrics(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def progress_line(sim: SimulatorThread, snapshot: dict[str, Any] | None, end_s: float) -> str:
    done = min(100.0, 100 * sim.sim_time_s / end_s)
    if snapshot is None:
        return f"  market {done:5.1f}%  producer starting…"
    per_exchange = snapshot["exchanges"]
    received = "  ".join(f"{name} {c['received']:>6}" for name, c in sorted(per_exchange.items()))
    return (
        f"  market {done:5.1f}%  received: {received}  published {snapshot['published']:>6}"
        f"  reconnects {snapshot['reconnects']:>3}  backfilled {snapshot['backfilled']:>4}"
    )


def run_demo(speed: float, minutes: float, seed: int, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = demo_scenario(seed, minutes)
    end_s = float(scenario.duration_s or 0)
    print(f"demo: {minutes:g} simulated minutes at {speed:g}x, logs in {workdir}", flush=True)
    with LocalAws(log_path=workdir / "moto.log") as aws:
        os.environ.update(aws.env())
        import boto3

        kinesis = boto3.client("kinesis", region_name=aws.env()["AWS_REGION"])
        ensure_stream(kinesis, STREAM, shards=2)
        print(f"  local AWS endpoint {aws.endpoint_url}, stream {STREAM} ready", flush=True)
        gate = MarketGate()
        with SimulatorThread(scenario, speed=speed, clock=gate) as sim:
            print(
                f"  exchange simulator: binance {sim.binance_ws_url}, "
                f"coinbase {sim.coinbase_ws_url}",
                flush=True,
            )
            final = run_producer(sim, gate, aws, end_s, workdir)
            truth = sim.counters()
            emitted = sim.emitted()
        records = read_stream(kinesis, STREAM)
    return summarize(records, emitted, truth, final)


def run_producer(
    sim: SimulatorThread, gate: MarketGate, aws: LocalAws, end_s: float, workdir: Path
) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        **aws.env(),
        "PYTHONPATH": str(REPO_ROOT),
        "PRODUCER_STREAM_NAME": STREAM,
        "PRODUCER_SYMBOLS": json.dumps(SYMBOLS),
        "PRODUCER_BINANCE_WS_URL": sim.binance_ws_url,
        "PRODUCER_BINANCE_REST_URL": sim.binance_rest_url,
        "PRODUCER_COINBASE_WS_URL": sim.coinbase_ws_url,
        "PRODUCER_COINBASE_REST_URL": sim.coinbase_rest_url,
        "PRODUCER_HEALTH_HOST": "127.0.0.1",
        "PRODUCER_HEALTH_PORT": str(port),
        "PRODUCER_RECONNECT_INITIAL_S": "0.1",
        "PRODUCER_RECONNECT_MAX_S": "1",
        "PRODUCER_SPILL_PATH": str(workdir / "spill.jsonl"),
    }
    log_path = workdir / "producer.log"
    with log_path.open("w") as log:
        producer = subprocess.Popen(
            [sys.executable, "-m", "producer", "run"], env=env, stderr=log, cwd=REPO_ROOT
        )
        try:
            deadline = time.monotonic() + 60
            while not ready(port):
                if producer.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"producer did not become ready; see {log_path}")
                time.sleep(0.2)
            print("  producer ready (both exchanges connected): the market opens", flush=True)
            gate.open()
            snapshot = None
            while not sim.market_ended:
                if producer.poll() is not None:
                    raise RuntimeError(f"producer exited early; see {log_path}")
                snapshot = metrics(port) or snapshot
                print(progress_line(sim, snapshot, end_s), flush=True)
                time.sleep(2.0)
            expected = sum(len(ids) for ids in sim.emitted().values())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the last gaps' backfill
                snapshot = metrics(port) or snapshot
                if snapshot and snapshot["published"] >= expected:
                    break
                time.sleep(0.5)
            print(progress_line(sim, snapshot, end_s), flush=True)
            print("  stopping the producer (SIGTERM)…", flush=True)
            producer.send_signal(signal.SIGTERM)
            exit_code = producer.wait(timeout=60)
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
    stopped = [
        json.loads(line)
        for line in log_path.read_text().splitlines()
        if line.startswith("{") and '"producer stopped"' in line
    ]
    final: dict[str, Any] = stopped[-1]["counters"] if stopped else {}
    final["exit_code"] = exit_code
    return final


def summarize(
    records: list[dict[str, Any]],
    emitted: dict[tuple[str, str], list[int]],
    truth: dict[str, Any],
    final: dict[str, Any],
) -> dict[str, Any]:
    canonical = {(e, p[e]): s for s, p in SYMBOLS.items() for e in p}
    expected = {
        f"{exchange}:{canonical[(exchange, product)]}:{trade_id}"
        for (exchange, product), ids in emitted.items()
        for trade_id in ids
    }
    published = collections.Counter(r["event_id"] for r in records)
    per_pair = collections.Counter((r["exchange"], r["symbol"]) for r in records)
    print("\nWhat reached the stream:")
    print(f"  {'exchange':<10} {'symbol':<10} {'trades':>8}")
    for (exchange, symbol), count in sorted(per_pair.items()):
        print(f"  {exchange:<10} {symbol:<10} {count:>8}")
    whales = sorted(records, key=lambda r: r["quote_volume"], reverse=True)[:3]
    print("Largest trades:")
    for r in whales:
        print(
            f"  {r['timestamp']}  {r['exchange']:<8} {r['symbol']:<9} {r['side']:<4} "
            f"{r['quote_volume']:>14,.2f} {r['symbol'].split('-')[1]}"
        )
    exchanges = final.get("exchanges", {})
    print("What the producer handled:")
    for name, counters in sorted(exchanges.items()):
        injected = truth[name]
        print(
            f"  {name:<9} reconnects {counters['reconnects']:>3} (simulator dropped "
            f"{injected.drops}), gaps {counters['gaps_detected']:>3}, backfilled "
            f"{counters['backfilled']:>4} (simulator skipped {injected.trades_skipped}), "
            f"malformed frames rejected {sum(counters['rejected'].values())}"
        )
    absent = expected - set(published)
    missing = len(absent)
    if absent:
        print("Missing trade ids (first 20):", ", ".join(sorted(absent)[:20]))
    duplicates = sum(n - 1 for n in published.values())
    print(
        f"Every emitted trade id in Kinesis: {'yes' if not missing else 'NO'} "
        f"({len(expected)} emitted, {len(published)} published, {missing} missing, "
        f"{duplicates} duplicated); producer exit code {final.get('exit_code')}"
    )
    return {
        "trades": len(published),
        "emitted": len(expected),
        "missing": missing,
        "duplicates": duplicates,
        "reconnects": final.get("reconnects", 0),
        "gaps_backfilled": final.get("backfilled", 0),
        "exit_code": final.get("exit_code"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__)
    parser.add_argument("--speed", type=float, default=30.0, help="simulated seconds per second")
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated market minutes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "demo")
    args = parser.parse_args(argv)
    try:
        result = run_demo(args.speed, args.minutes, args.seed, args.workdir)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    ok = result["missing"] == 0 and result["duplicates"] == 0 and result["exit_code"] == 0
    print(
        f"demo: trades={result['trades']} missing={result['missing']} "
        f"duplicates={result['duplicates']} reconnects={result['reconnects']} "
        f"gaps_backfilled={result['gaps_backfilled']} producer_exit={result['exit_code']}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
