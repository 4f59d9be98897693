"""The producer against the exchange simulator and the local AWS endpoint, over real sockets:
forced disconnects, skipped trade ids, malformed frames, a 429 — and every trade id the exchanges
emitted is in Kinesis exactly once. The health endpoint's counters tell the same story."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import aiohttp
import pytest

from devstack.provision import read_stream
from devstack.simulator import (
    DropConnections,
    Malformed,
    Rest429,
    Scenario,
    SilentGap,
    SimulatorThread,
    SkipTradeIds,
    SymbolSpec,
)
from producer.metrics import ProducerCounters
from producer.service import ProducerService, kinesis_client
from producer.settings import load_settings

SYMBOLS = {
    "BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"},
    "ETH-USDT": {"binance": "ETHUSDT", "coinbase": "ETH-USD"},
}
# The first simulated seconds are silent so the producer is subscribed before the first trade:
# then "every trade the exchange emitted" and "every trade after we connected" are the same set.
QUIET_START_S = 20.0

SCENARIO = Scenario(
    seed=11,
    symbols=(
        SymbolSpec(trades_per_s=12.0),
        SymbolSpec(
            symbol="ETH-USDT",
            binance="ETHUSDT",
            coinbase="ETH-USD",
            base_price=3000.0,
            trades_per_s=9.0,
        ),
    ),
    events=(SilentGap(start_s=0.0, duration_s=QUIET_START_S),),
    faults=(
        DropConnections(every_n_trades=250),
        SkipTradeIds(at_trade=180, count=9, exchange="binance"),
        SkipTradeIds(at_trade=140, count=6, exchange="coinbase"),
        Malformed(at_trade=60, exchange="binance"),
        Malformed(at_trade=70, exchange="coinbase"),
        Rest429(at_request_n=2, retry_after_s=1, exchange="binance"),
    ),
    duration_s=QUIET_START_S + 140.0,
)


def producer_settings(sim: SimulatorThread, stream_name: str, **overrides: Any) -> Any:
    return load_settings(
        stream_name=stream_name,
        symbols=SYMBOLS,
        binance_ws_url=sim.binance_ws_url,
        binance_rest_url=sim.binance_rest_url,
        coinbase_ws_url=sim.coinbase_ws_url,
        coinbase_rest_url=sim.coinbase_rest_url,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.5,
        stale_after_s=5.0,
        health_host="127.0.0.1",
        health_port=0,
        linger_ms=20,
        **overrides,
    )


async def metrics(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


def expected_event_ids(sim: SimulatorThread) -> set[str]:
    canonical = {(e, p[e]): s for s, p in SYMBOLS.items() for e in p}
    return {
        f"{exchange}:{canonical[(exchange, product)]}:{trade_id}"
        for (exchange, product), ids in sim.emitted().items()
        for trade_id in ids
    }


@pytest.mark.slow
def test_every_trade_id_reaches_kinesis_across_disconnects_and_gaps(
    kinesis: Any, stream_name: str
) -> None:
    with SimulatorThread(SCENARIO, speed=10.0) as sim:
        settings = producer_settings(sim, stream_name)
        counters = ProducerCounters()

        async def scenario() -> tuple[int, dict[str, Any], dict[str, Any]]:
            service = ProducerService(settings, kinesis_client(settings), counters)
            stop = asyncio.Event()
            running = asyncio.create_task(service.run(stop))
            await service.started.wait()
            async with aiohttp.ClientSession() as http:
                for _ in range(100):  # ready once both exchanges are connected
                    async with http.get(f"http://127.0.0.1:{service.health.port}/readyz") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("producer never became ready")
            during = await metrics(service.health.port)
            await asyncio.to_thread(sim.wait_until_ended, 60.0)
            expected = len(expected_event_ids(sim))
            for _ in range(300):  # until the backfill of the last gaps is published
                final = await metrics(service.health.port)
                if final["published"] >= expected and final["queue_depth"] == 0:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            return await running, during, final

        exit_code, during, final = asyncio.run(scenario())
        expected = expected_event_ids(sim)
        truth = sim.counters()

    records = read_stream(kinesis, stream_name)
    published = collections.Counter(r["event_id"] for r in records)
    assert exit_code == 0
    assert set(published) == expected  # none missing, none invented
    assert max(published.values()) == 1  # none twice
    assert len(expected) > 3000

    # Every fault actually happened, and the producer saw and recovered each.
    for exchange in ("binance", "coinbase"):
        assert truth[exchange].drops >= 3
        assert truth[exchange].trades_skipped > 0
        assert truth[exchange].malformed_frames_sent >= 1
        mine = final["exchanges"][exchange]
        assert mine["reconnects"] >= truth[exchange].drops
        assert mine["gaps_detected"] >= 1 + truth[exchange].drops // 2
        assert mine["backfilled"] >= truth[exchange].trades_skipped
        assert sum(mine["rejected"].values()) >= truth[exchange].malformed_frames_sent
    assert truth["binance"].rest_429s == 1
    assert final["exchanges"]["binance"]["rest_rate_limited"] == 1

    # The health endpoint's counters match what reached Kinesis.
    assert during["published"] <= final["published"]
    assert final["published"] == final["enqueued"] == len(records)
    assert final["failed"] == 0
    # Each live trade is new or a duplicate; backfill adds only what was missing.
    assert final["enqueued"] == final["received"] - final["duplicates"] + final["backfilled"]
