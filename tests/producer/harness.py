"""Run the producer service in-process against a simulator thread and a stream, to completion."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from devstack.provision import read_stream
from devstack.simulator import SimulatorThread
from producer.service import ProducerService, kinesis_client
from producer.settings import ProducerSettings, load_settings


def settings_for(
    sim: SimulatorThread, stream_name: str, symbols: dict[str, dict[str, str]], **overrides: Any
) -> ProducerSettings:
    values: dict[str, Any] = {
        "stream_name": stream_name,
        "symbols": symbols,
        "exchanges": tuple(sorted({e for products in symbols.values() for e in products})),
        "binance_ws_url": sim.binance_ws_url,
        "binance_rest_url": sim.binance_rest_url,
        "coinbase_ws_url": sim.coinbase_ws_url,
        "coinbase_rest_url": sim.coinbase_rest_url,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.5,
        "stale_after_s": 5.0,
        "health_host": "127.0.0.1",
        "health_port": 0,
        "linger_ms": 20,
    }
    values.update(overrides)
    return load_settings(**values)


def expected_event_ids(sim: SimulatorThread, symbols: dict[str, dict[str, str]]) -> set[str]:
    """Every trade the simulated exchanges emitted, as unified event ids."""
    canonical = {(e, p[e]): s for s, p in symbols.items() for e in p}
    return {
        f"{exchange}:{canonical[(exchange, product)]}:{trade_id}"
        for (exchange, product), ids in sim.emitted().items()
        if (exchange, product) in canonical
        for trade_id in ids
    }


async def get_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        body: dict[str, Any] = await response.json()
        return response.status, body


@dataclass
class Run:
    exit_code: int
    ready_at_start: tuple[int, dict[str, Any]]
    first_metrics: dict[str, Any]
    final: dict[str, Any]
    expected: set[str]
    records: list[dict[str, Any]]


def run_until_market_ends(
    sim: SimulatorThread,
    settings: ProducerSettings,
    kinesis: Any,
    *,
    wait_ready: bool = True,
    settle_timeout_s: float = 30.0,
) -> Run:
    """Start the service, wait for readiness, let the market run to its end, wait until every
    emitted trade is published (or `settle_timeout_s`), stop with the stop event."""

    async def scenario() -> Run:
        service = ProducerService(settings, kinesis_client(settings))
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        await service.started.wait()
        port = service.health.port
        ready = await get_json(port, "/readyz")
        for _ in range(100 if wait_ready else 0):
            if ready[0] == 200:
                break
            await asyncio.sleep(0.1)
            ready = await get_json(port, "/readyz")
        first = (await get_json(port, "/metrics"))[1]
        await asyncio.to_thread(sim.wait_until_ended, 120.0)
        expected = expected_event_ids(sim, settings.symbols)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_timeout_s
        final = first
        while loop.time() < deadline:
            final = (await get_json(port, "/metrics"))[1]
            if final["published"] >= len(expected) and final["queue_depth"] == 0:
                break
            await asyncio.sleep(0.1)
        stop.set()
        exit_code = await running
        final = service.counters.snapshot()
        records = await asyncio.to_thread(read_stream, kinesis, settings.stream_name)
        return Run(exit_code, ready, first, final, expected, records)

    return asyncio.run(scenario())
