"""The demo, shortened: it runs end to end and says every trade reached the stream."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_short_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.demo",
            "--minutes",
            "1.5",
            "--speed",
            "30",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"demo: trades=(\d+) missing=0 duplicates=0 reconnects=(\d+) gaps_backfilled=(\d+)"
        r" producer_exit=0",
        last,
    )
    assert match, last
    assert int(match[1]) > 1000
    assert "Every emitted trade id in Kinesis: yes" in result.stdout
    assert (tmp_path / "producer.log").exists()
    assert (tmp_path / "moto.log").exists()
