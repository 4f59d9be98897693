"""The benchmark harness works (no timing assertions; Spark is never started here)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from bench import frames as market
from bench import producer
from bench.measure import Figure, Section
from bench.report import build, markdown, stored, write


@pytest.mark.parametrize(
    "module",
    [
        "bench.__main__",
        "bench.frames",
        "bench.jobs",
        "bench.latency",
        "bench.machine",
        "bench.measure",
        "bench.polars_floor",
        "bench.producer",
        "bench.report",
    ],
)
def test_every_bench_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_the_market_mixes_both_exchanges_and_heartbeats() -> None:
    frames = market.exchange_frames(market.trades(600))
    kinds = {(f.exchange, f.trade is None) for f in frames}
    assert kinds == {("binance", False), ("coinbase", False), ("coinbase", True)}
    assert sum(1 for f in frames if f.trade is not None) == 600


def test_a_tiny_normalization_run_measures_the_producers_own_path(tmp_path: Path) -> None:
    frames = market.exchange_frames(market.trades(400))
    section = Section("producer")
    producer.normalize(section, frames, 1, producer.bench_settings())
    figures = {f.key: f for f in section.figures}
    speed = figures["producer_normalize_msgs_per_s"].value
    ratio = figures["producer_normalize_vs_orjson_ratio"].value
    assert speed is not None
    assert speed > 0
    assert ratio is not None
    assert ratio > 0
    # Every trade frame became one record of the unified event.
    run = producer.NormalizeRun(frames, producer.bench_settings(), keep=True)
    run.run()
    assert run.records == 400
    assert run.kept is not None
    assert {e.exchange for e in run.kept} == {"binance", "coinbase"}

    sections = {"producer": stored(section, 1, 0.0, 0.0)}
    results = build(sections, {"cores": 2}, {"python": "3.11"})
    assert results["producer_normalize_msgs_per_s"] == speed
    assert results["targets"]["producer_normalize_msgs_per_s"]["met"] in (True, False)
    assert "`producer_normalize_msgs_per_s`" in markdown(results)
    write(tmp_path, results)
    assert json.loads((tmp_path / "results.json").read_text())["runs"]
    assert (tmp_path / "RESULTS.md").read_text().startswith("# Benchmarks")


def test_the_report_names_the_times_of_sections_measured_apart() -> None:
    producer_section = stored(Section("producer"), 1, 0.0, 0.0)
    jobs_section = stored(Section("jobs"), 1, 0.0, 0.0)
    producer_section["measured_at"] = "2026-11-22T19:02:56Z"
    jobs_section["measured_at"] = "2026-11-22T23:07:14Z"

    apart = markdown(build({"producer": producer_section, "jobs": jobs_section}, {}, {}))
    jobs_section["measured_at"] = producer_section["measured_at"]
    together = markdown(build({"producer": producer_section, "jobs": jobs_section}, {}, {}))

    assert "`producer` 2026-11-22T19:02:56Z, `jobs` 2026-11-22T23:07:14Z" in apart
    assert "measured at different times" not in together


def test_the_jobs_account_sets_them_against_the_spark_floor_and_the_shards_read_limit() -> None:
    section = Section("jobs")
    for key, value in (
        ("whale_job_events_per_s", 9_000.0),
        ("volume_job_events_per_s", 4_000.0),
        ("spread_job_events_per_s", 6_000.0),
        ("spark_floor_events_per_s", 11_273.0),
        ("spark_floor_file_source_events_per_s", 51_069.0),
        ("whale_job_vs_spark_floor_ratio", 1.31),
        ("volume_job_vs_spark_floor_ratio", 2.82),
        ("spread_job_vs_spark_floor_ratio", 1.92),
    ):
        section.add(Figure(key, [value], "x" if key.endswith("ratio") else "events/s", "m"))
    # 8.0 MiB on the busier shard, 4.0 MiB on the other: at 2 MiB/s a shard, 4 s and 3 s.
    section.details["stream_bytes_per_shard"] = [8 * 1024 * 1024, 4 * 1024 * 1024]
    section.details["job_trades"] = 50_000

    text = markdown(build({"jobs": stored(section, 1, 0.0, 0.0)}, {}, {}))

    assert "ran at 11,273 events/s, below the target: no job reading this stream" in text
    assert "From the files the same query ran at 51,069 events/s" in text
    assert "The jobs took 1.31× (`whale`), 2.82× (`volume`), 1.92× (`spread`)" in text
    assert "These 50,000 trades are 12.0 MiB, 8.0 MiB of them on the busiest of the 2" in text
    assert "takes at least 4.0 s to hand them to a single consumer: 12,500 events/s" in text
    assert "(16,667 were the shards evenly loaded)" in text
