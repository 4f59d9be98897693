"""`make demo`, shortened: the whole pipeline end to end (local AWS, exchange simulator,
producer, the four jobs), the summary line, the report; and Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.demo import _descendants

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"demo: volume_anomaly=(\d+) whale=(\d+) spread=(\d+) report=(\S+)")


@pytest.mark.slow
def test_a_short_demo_finds_every_scripted_event_and_writes_the_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.demo", "--short", "--workdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-3000:]
    match = SUMMARY.fullmatch(out.strip().splitlines()[-1])
    assert match, out[-2000:]
    volume, whales, spreads, report = int(match[1]), int(match[2]), int(match[3]), match[4]
    assert whales == 5  # the five scripted whales and no other trade over 100 000 USDT
    assert volume >= 1  # the burst (and the minutes a whale alone makes unusual)
    assert spreads >= 2  # the dislocation spans five 30 s windows
    assert Path(report) == tmp_path / "report.html"
    # Read back through the saved queries, checked against the script.
    for heading in ("alert_counts_by_type", "top_whales", "anomalies_by_symbol_hour"):
        assert heading in out
    assert "Every scripted event was found." in out
    assert "MISSED" not in out
    assert re.search(r"raw_trades holds [\d,]+ rows, 0 missing, 0 duplicated", out)
    for reason in ("parse_json", "validity_price_positive", "validity_symbol_allowed"):
        assert re.search(rf"trade_archiver\s+{reason}\s+1 records", out), reason
    assert re.search(rf"DynamoDB \(hot path\) holds {volume + whales + spreads} alerts", out)
    assert "producer stopped (SIGTERM, exit code 0)" in out
    # Progress while it ran.
    assert len(re.findall(r"market +[\d.]+% .* trades in +[\d,]+ .*batches +\d+ +alerts", out)) > 5

    page = Path(report).read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # volume, spread, whales on BTC and on ETH price lines
    for title in ("Per-minute quote volume", "Cross-exchange spread", "Whales on the price line"):
        assert title in page
    assert "threshold 0.5 %" in page
    assert "script check: 8 of 8 found" in page
    assert "MISSED" not in page
    for alert_id in re.findall(r"whale:(?:binance|coinbase):[A-Z]+-USDT:\d+", out):
        assert alert_id in page


@pytest.mark.slow
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "devstack.demo", "--short", "--workdir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )
    try:
        assert demo.stdout is not None
        seen = []
        for line in demo.stdout:
            seen.append(line)
            if "producer ready" in line:
                break
        else:
            pytest.fail("the demo ended before the market opened:\n" + "".join(seen))
        time.sleep(3)  # the market plays, the jobs are starting
        started = _descendants(demo.pid)
        assert len(started) >= 4  # moto, simulator, producer, the Spark JVM, ...
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's process group
        _, err = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, err[-3000:]
    assert "demo: interrupted; everything it started was stopped" in err
    deadline = time.monotonic() + 15
    while (alive := [pid for pid in started if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive, subprocess.run(
        ["ps", "-o", "pid,args", "-p", ",".join(map(str, alive))],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[-1].startswith("Z"))
