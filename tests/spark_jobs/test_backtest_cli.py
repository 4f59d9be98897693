"""`python -m spark_jobs.<job> --backtest TRADES --out DIR`, as analysts run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.spark_jobs.jvm import SPARK_CONF_ENV
from tests.spark_jobs.test_jobs import event

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_whale_backtest_writes_each_output_as_json_lines(tmp_path: Path) -> None:
    trades = tmp_path / "trades.jsonl"
    lines = [
        json.dumps(event(1, 1, price=60_000.0, quantity=1.0)),
        json.dumps(event(2, 2, price=60_000.0, quantity=2.5)),  # 150 000: whale
        json.dumps({**event(3, 3), "symbol": "DOGE-USDT", "event_id": "binance:DOGE-USDT:3"}),
        "{oops",
    ]
    trades.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_jobs.whale_detector",
            "--backtest",
            str(trades),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYSPARK_PYTHON": sys.executable,
            "CRYPTO_PULSE_METRICS__CLOUDWATCH": "false",
            "CRYPTO_PULSE_SPARK__CONF": SPARK_CONF_ENV,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "dlq=2 whale_trades=1 alerts=1"

    def rows(name: str) -> list[dict[str, object]]:
        return [
            json.loads(line)
            for f in sorted((out / name).glob("part-*.json"))
            for line in f.read_text().splitlines()
        ]

    (whale,) = rows("whale_trades")
    assert whale["alert_id"] == "whale:binance:BTC-USDT:2"
    assert whale["timestamp"] == "2026-01-01T00:00:02.000000Z"
    assert sorted(r["reason"] for r in rows("dlq")) == ["parse_json", "validity_symbol_allowed"]
    (alert,) = rows("alerts")
    assert (alert["alert_type"], alert["metric"]) == ("WHALE_TRADE", 150_000.0)
