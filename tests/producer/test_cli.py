"""The CLI tools: `normalize` over recorded frames, `replay` into the local stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.provision import read_stream
from tests.producer.frames import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_normalize_coinbase_all_products() -> None:
    frames = (FIXTURES / "coinbase_exchange_matches_2021.jsonl").read_text()
    result = cli("normalize", "--exchange", "coinbase", "--all-products", stdin=frames)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 107
    assert events[0]["event_id"] == "coinbase:BAND-GBP:881613"
    assert events[0]["side"] == "buy"  # the maker sold
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {"non_trade": 3, "trades": 107}


def test_normalize_without_all_products_skips_unmapped_and_reports_bad_lines() -> None:
    frames = (FIXTURES / "binance_trade_combined_2019.jsonl").read_text() + '{"stream":\n'
    result = cli("normalize", "--exchange", "binance", stdin=frames)
    assert result.returncode == 1  # a malformed line was seen
    assert result.stdout == ""  # BNBBTC is not in the default map
    assert "line 3: rejected (invalid_json)" in result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {
        "rejected": 1,
        "skipped_unmapped_product": 2,
    }


def test_replay_publishes_recorded_frames_and_unified_events(
    aws_env: dict[str, str], kinesis: Any, stream_name: str, tmp_path: Path
) -> None:
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_text(
        (FIXTURES / "binance_trade_combined_2021.jsonl").read_text()
        + (FIXTURES / "coinbase_exchange_match_2019.jsonl").read_text()
        + json.dumps(
            {
                "event_id": "binance:BTC-USDT:7",
                "exchange": "binance",
                "symbol": "BTC-USDT",
                "price": 2.0,
                "quantity": 3.0,
                "quote_volume": 6.0,
                "side": "buy",
                "timestamp": "2026-01-01T00:00:00.000Z",
                "ingestion_timestamp": "2026-01-01T00:00:00.100000Z",
            }
        )
        + "\n"
        + "not json\n"
    )
    result = cli(
        "replay",
        str(recorded),
        "--all-products",
        env={**aws_env, "PRODUCER_STREAM_NAME": stream_name},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {
        "stream": stream_name,
        "read": 3,
        "rejected_invalid_json": 1,
        "published": 3,
        "failed": 0,
    }
    ids = sorted(r["event_id"] for r in read_stream(kinesis, stream_name))
    assert ids == ["binance:BTC-USDT:7", "binance:ETH-USDT:705291099", "coinbase:ETC-GBP:216544"]


def test_replay_to_a_missing_stream_fails_naming_it(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    recorded = tmp_path / "one.jsonl"
    recorded.write_text((FIXTURES / "binance_trade_combined_2021.jsonl").read_text())
    result = cli(
        "replay",
        str(recorded),
        "--all-products",
        env={**aws_env, "PRODUCER_STREAM_NAME": "no-such-stream"},
    )
    assert result.returncode == 2
    assert (
        "PRODUCER_STREAM_NAME: stream 'no-such-stream': ResourceNotFoundException" in result.stderr
    )
