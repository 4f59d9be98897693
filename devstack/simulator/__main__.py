"""`python -m devstack.simulator`: run the exchange simulator until SIGTERM/SIGINT.

Prints one JSON line on stdout with the four URLs
(`{"binance_ws_url": .., "binance_rest_url": .., "coinbase_ws_url": .., "coinbase_rest_url": ..}`)
once both exchanges listen, so a script can read it; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from devstack.simulator.binance import BinanceConfig
from devstack.simulator.market import Scenario
from devstack.simulator.server import Simulator

log = logging.getLogger("devstack.simulator")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.simulator",
        description="Local Binance + Coinbase simulator (WebSocket + REST) on a scripted market.",
    )
    parser.add_argument("--seed", type=int, default=None, help="market seed (overrides the file)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument("--scenario", help="scenario JSON file (Scenario.to_dict shape)")
    parser.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="stop generating trades after this many simulated seconds (keeps serving)",
    )
    parser.add_argument(
        "--start",
        default=None,
        help="simulated start time, ISO 8601 UTC or 'now' (default: the scenario's)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--binance-port", type=int, default=0)
    parser.add_argument("--coinbase-port", type=int, default=0)
    parser.add_argument(
        "--ping-interval-s", type=float, default=None, help="Binance server ping interval"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def build_scenario(args: argparse.Namespace) -> Scenario:
    base = Scenario.load(args.scenario) if args.scenario else Scenario()
    start = base.start
    if args.start == "now":
        start = datetime.now(UTC).replace(microsecond=0)
    elif args.start is not None:
        start = datetime.fromisoformat(args.start)
    return Scenario(
        seed=base.seed if args.seed is None else args.seed,
        start=start,
        symbols=base.symbols,
        events=base.events,
        faults=base.faults,
        duration_s=base.duration_s if args.duration_s is None else args.duration_s,
    )


async def run(args: argparse.Namespace) -> None:
    scenario = build_scenario(args)
    binance = BinanceConfig()
    if args.ping_interval_s is not None:
        binance = dataclasses.replace(binance, ping_interval_s=args.ping_interval_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(
        scenario,
        speed=args.speed,
        host=args.host,
        binance_port=args.binance_port,
        coinbase_port=args.coinbase_port,
        binance=binance,
    ) as sim:
        print(json.dumps(dataclasses.asdict(sim.urls())), flush=True)
        log.info(
            "simulator up: seed=%s speed=%s symbols=%s duration_s=%s",
            scenario.seed,
            args.speed,
            [s.symbol for s in scenario.symbols],
            scenario.duration_s,
        )
        await stop.wait()
        log.info("stopping; %d trades generated", len(sim.trades()))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
