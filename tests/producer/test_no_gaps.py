"""The producer against the exchange simulator and the local AWS endpoint, over real sockets:
forced disconnects, skipped trade ids, malformed frames, a 429 — and every trade id the exchanges
emitted is in Kinesis exactly once. The health endpoint's counters tell the same story."""

from __future__ import annotations

import collections
from typing import Any

import pytest

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
from tests.producer.harness import run_until_market_ends, settings_for

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


@pytest.mark.slow
def test_every_trade_id_reaches_kinesis_across_disconnects_and_gaps(
    kinesis: Any, stream_name: str
) -> None:
    with SimulatorThread(SCENARIO, speed=10.0) as sim:
        run = run_until_market_ends(sim, settings_for(sim, stream_name, SYMBOLS), kinesis)
        truth = sim.counters()
    final = run.final
    published = collections.Counter(r["event_id"] for r in run.records)
    assert run.exit_code == 0
    assert run.ready_at_start[0] == 200
    assert set(published) == run.expected  # none missing, none invented
    assert max(published.values()) == 1  # none twice
    assert len(run.expected) > 3000

    # Every fault actually happened, and the producer saw and recovered each.
    for exchange in ("binance", "coinbase"):
        assert truth[exchange].drops >= 3
        assert truth[exchange].trades_skipped > 0
        assert truth[exchange].malformed_frames_sent >= 1
        assert set(truth[exchange].protocol_closes) <= {"drop_fault", "client"}
        mine = final["exchanges"][exchange]
        assert mine["reconnects"] >= truth[exchange].drops
        assert mine["backfilled"] >= truth[exchange].trades_skipped
        assert sum(mine["rejected"].values()) >= truth[exchange].malformed_frames_sent
    assert truth["binance"].rest_429s == 1
    assert final["exchanges"]["binance"]["rest_rate_limited"] == 1

    # The health endpoint's counters match what reached Kinesis.
    assert run.first_metrics["published"] <= final["published"]
    assert final["published"] == final["enqueued"] == len(run.records)
    assert final["failed"] == 0
    # Each live trade is new or a duplicate; backfill adds only what was missing.
    assert final["enqueued"] == final["received"] - final["duplicates"] + final["backfilled"]
