"""`python -m bench [--only SECTION,...] [--repeat N]`: measure, then write bench/results.json and
bench/RESULTS.md (sections not rerun keep their previous figures).

Sections: producer (normalization, its floor, the peer, publishing), polars (the compute floor),
jobs (the three detector jobs from the stream and from files, the emulator floor), latency (the
live pipeline).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from pathlib import Path

from bench import frames as market
from bench.machine import ForeignCpu, load_average, machine, versions
from bench.measure import Section
from bench.report import build, load, stored, write

SECTIONS = ("producer", "polars", "jobs", "latency")
BENCH_DIR = Path(__file__).resolve().parent
WORKDIR = BENCH_DIR.parent / "var" / "bench"


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


def run_section(name: str, repeat: int, frames: list[market.Frame], quick: bool) -> Section:
    section = Section(name)
    if name == "producer":
        from bench import producer

        settings = producer.bench_settings()
        normalize_frames = frames[: 5_000 if quick else producer.NORMALIZE_FRAMES]
        producer.normalize(section, normalize_frames, repeat, settings)
        section.details["normalize_stages"] = producer.stages(normalize_frames, settings)
        section.details["normalize_profile"] = producer.profile(normalize_frames, settings)
        producer.peer(section, normalize_frames, repeat, settings)
        events = producer.events(frames)[: 5_000 if quick else producer.PUBLISH_EVENTS]
        producer.publish(section, events, repeat)
    elif name == "polars":
        from bench import polars_floor, producer

        records = producer.records(frames)[: job_trades(quick)]
        polars_floor.run_floor(section, records, repeat)
    elif name == "jobs":
        from bench import jobs, producer

        records = producer.records(frames)[: job_trades(quick)]
        backlog_trades = 20_000 if quick else jobs.BACKLOG_TRADES
        backlog = producer.records(market.exchange_frames(market.trades(backlog_trades)))
        jobs.run_jobs(section, records, WORKDIR / "jobs", min(repeat, 3), log=say, backlog=backlog)
    elif name == "latency":
        from bench import latency

        latency.run_latency(section, WORKDIR / "latency", log=say)
    return section


def job_trades(quick: bool) -> int:
    from bench import jobs

    return 5_000 if quick else jobs.JOB_TRADES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke test only")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where results go")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    count = max(market_trades(args.quick), job_trades(args.quick))
    say(f"the benchmark market: {count:,} trades")
    frames = market.exchange_frames(market.trades(count))
    where = machine()
    software = versions()
    previous = load(args.out).get("sections", {})
    sections: dict[str, dict[str, object]] = dict(previous)
    for name in SECTIONS:
        if name not in chosen:
            continue
        say(f"{name} ...")
        gc.collect()
        before = load_average()
        others = ForeignCpu().start()
        clock = time.monotonic()
        section = run_section(name, args.repeat, frames, args.quick)
        section.seconds = time.monotonic() - clock
        sections[name] = stored(section, args.repeat, before, load_average(), others.share())
        for figure in section.figures:
            value = "null" if figure.value is None else f"{figure.value:,.3f}"
            say(
                f"  {figure.key} = {value} {figure.unit}"
                + (f" ({figure.note})" if figure.note else "")
            )
        write(args.out, build(sections, where, software))
    say(f"done in {time.monotonic() - started:.0f} s: {args.out / 'RESULTS.md'}")
    return 0


def market_trades(quick: bool) -> int:
    from bench import producer

    return 5_000 if quick else max(producer.NORMALIZE_FRAMES, producer.PUBLISH_EVENTS)


if __name__ == "__main__":
    sys.exit(main())
