"""A full queue holds the exchanges' trades back (backpressure), and loses none: live trades are
handed over without a coroutine while the queue has room (`ProducerService.offer`) and wait for
room (`emit`) when it has none."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from devstack.simulator import Scenario, SilentGap, SimulatorThread, SymbolSpec
from producer.events import TradeEvent
from producer.service import ProducerService, kinesis_client
from producer.settings import load_settings
from tests.producer.harness import run_until_market_ends, settings_for

SYMBOLS = {"BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"}}
QUIET_START_S = 20.0  # subscribed before the first trade: every trade emitted is ours
SCENARIO = Scenario(
    seed=5,
    symbols=(SymbolSpec(trades_per_s=60.0),),
    events=(SilentGap(start_s=0.0, duration_s=QUIET_START_S),),
    duration_s=QUIET_START_S + 20.0,
)


def trade(trade_id: int) -> TradeEvent:
    return TradeEvent(
        "binance",
        "BTC-USDT",
        trade_id,
        60_000.0,
        0.5,
        "buy",
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:00.001000Z",
    )


def test_offer_takes_a_trade_only_while_the_queue_has_room(kinesis: Any, stream_name: str) -> None:
    settings = load_settings(stream_name=stream_name, symbols=SYMBOLS, queue_max_events=2)

    async def scenario() -> tuple[list[bool], list[int], int]:
        service = ProducerService(settings, kinesis_client(settings))
        taken = [service.offer(trade(n)) for n in (1, 2, 3)]
        waiting = asyncio.create_task(service.emit(trade(3)))  # `emit` waits for room instead
        await asyncio.sleep(0.05)
        assert not waiting.done()
        first = service.queue.get_nowait()
        await asyncio.wait_for(waiting, 1.0)
        rest = [service.queue.get_nowait(), service.queue.get_nowait()]
        ids = [event.trade_id for event in (first, *rest) if event is not None]
        return taken, ids, service.counters.enqueued

    taken, ids, enqueued = asyncio.run(scenario())
    assert taken == [True, True, False]
    assert ids == [1, 2, 3]  # the refused trade came through `emit`, in order
    assert enqueued == 3


def test_a_queue_of_one_loses_no_trade(kinesis: Any, stream_name: str) -> None:
    with SimulatorThread(SCENARIO, speed=10.0) as sim:
        settings = settings_for(sim, stream_name, SYMBOLS, queue_max_events=1)
        run = run_until_market_ends(sim, settings, kinesis)
    published = collections.Counter(r["event_id"] for r in run.records)
    assert run.exit_code == 0
    assert len(run.expected) > 1500
    assert set(published) == run.expected  # none missing, none invented
    assert max(published.values()) == 1  # none twice
    assert run.final["published"] == run.final["enqueued"] == len(run.records)
