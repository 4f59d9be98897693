"""`python -m producer run` as users run it (a process), stopped with SIGTERM while trades flow."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.aws import free_port
from devstack.provision import read_stream
from devstack.simulator import Scenario, SilentGap, SimulatorThread, SymbolSpec

ROOT = Path(__file__).resolve().parents[2]
SHUTDOWN_TIMEOUT_S = 10.0


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_sigterm_drains_flushes_and_exits_zero(
    aws_env: dict[str, str], kinesis: Any, stream_name: str, tmp_path: Path
) -> None:
    scenario = Scenario(
        seed=5,
        symbols=(SymbolSpec(trades_per_s=40.0),),
        events=(SilentGap(start_s=0.0, duration_s=30.0),),
    )
    port = free_port()
    with SimulatorThread(scenario, speed=20.0) as sim:
        env = {
            **os.environ,
            **aws_env,
            "PYTHONPATH": str(ROOT),
            "PRODUCER_STREAM_NAME": stream_name,
            "PRODUCER_BINANCE_WS_URL": sim.binance_ws_url,
            "PRODUCER_BINANCE_REST_URL": sim.binance_rest_url,
            "PRODUCER_COINBASE_WS_URL": sim.coinbase_ws_url,
            "PRODUCER_COINBASE_REST_URL": sim.coinbase_rest_url,
            "PRODUCER_HEALTH_HOST": "127.0.0.1",
            "PRODUCER_HEALTH_PORT": str(port),
            "PRODUCER_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
            "PRODUCER_LINGER_MS": "200",  # batches are still open when SIGTERM arrives
        }
        stderr = (tmp_path / "producer.log").open("w+")
        process = subprocess.Popen(
            [sys.executable, "-m", "producer", "run"], env=env, stderr=stderr, cwd=ROOT
        )
        try:
            deadline = time.monotonic() + 30
            status, metrics = 0, {}
            while time.monotonic() < deadline:
                try:
                    status, metrics = get_json(f"http://127.0.0.1:{port}/metrics")
                    if status == 200 and metrics["published"] > 1000:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            assert status == 200
            assert metrics["published"] > 1000, metrics
            assert get_json(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
            ready_status, ready = get_json(f"http://127.0.0.1:{port}/readyz")
            assert (ready_status, ready) == (200, {"ready": True, "reasons": []})

            sent_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=SHUTDOWN_TIMEOUT_S + 5)
            took_s = time.monotonic() - sent_at
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert exit_code == 0
    assert took_s < SHUTDOWN_TIMEOUT_S
    stderr.seek(0)
    logs = [json.loads(line) for line in stderr if line.startswith("{")]
    stopped = [entry for entry in logs if entry["msg"] == "producer stopped"]
    assert len(stopped) == 1, logs[-5:]
    final = stopped[0]["counters"]

    records = read_stream(kinesis, stream_name)
    published = collections.Counter(r["event_id"] for r in records)
    assert max(published.values()) == 1
    assert final["enqueued"] == final["published"] == len(records) > metrics["published"]
    assert final["failed"] == 0
    # Everything received is in the stream: per product, one unbroken run of trade ids.
    by_product: dict[str, list[int]] = collections.defaultdict(list)
    for event_id in published:
        exchange, symbol, trade_id = event_id.rsplit(":", 2)
        by_product[f"{exchange}:{symbol}"].append(int(trade_id))
    assert set(by_product) == {"binance:BTC-USDT", "coinbase:BTC-USDT"}
    for ids in by_product.values():
        assert sorted(ids) == list(range(min(ids), max(ids) + 1))
