"""Connection behaviours against the simulator: pings, the 24 h rotation, outbound pacing, the
staleness watchdog, `serverShutdown`, and a Coinbase subscription the exchange refuses."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from devstack.simulator import (
    BinanceConfig,
    GoSilent,
    Scenario,
    ServerShutdown,
    SilentGap,
    SimulatorThread,
    SymbolSpec,
)
from producer.connectors import BinanceConnector
from tests.producer.harness import Run, run_until_market_ends, settings_for

BTC = {"BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"}}
QUIET_S = 10.0


def assert_complete(run: Run) -> None:
    published = collections.Counter(r["event_id"] for r in run.records)
    assert run.exit_code == 0
    assert set(published) == run.expected
    assert max(published.values()) == 1
    assert run.expected


@pytest.mark.slow
def test_pings_are_answered_and_connections_rotate_without_losing_trades(
    kinesis: Any, stream_name: str
) -> None:
    scenario = Scenario(
        seed=3,
        symbols=(SymbolSpec(trades_per_s=10.0, coinbase=None),),
        events=(SilentGap(start_s=0.0, duration_s=QUIET_S),),
        duration_s=QUIET_S + 60.0,
    )
    binance = BinanceConfig(ping_interval_s=0.2, pong_timeout_s=0.6, max_connection_s=3.0)
    with SimulatorThread(scenario, speed=10.0, binance=binance) as sim:
        settings = settings_for(
            sim, stream_name, {"BTC-USDT": {"binance": "BTCUSDT"}}, binance_rotate_after_s=2.0
        )
        run = run_until_market_ends(sim, settings, kinesis)
        truth = sim.counters()["binance"]
        connections = sim.connections("binance")
    assert_complete(run)
    assert truth.pongs_received >= 10  # every ping of ~7 s of connections was answered
    assert all(c.pongs_received >= c.pings_sent - 1 for c in connections)
    assert "pong_timeout" not in truth.protocol_closes
    assert "max_age" not in truth.protocol_closes  # we left before the exchange's limit
    mine = run.final["exchanges"]["binance"]
    assert mine["rotations"] >= 2  # replaced well before the (scaled) age limit
    assert mine["reconnects"] == mine["rotations"]
    assert len(connections) == mine["reconnects"] + 1


@pytest.mark.slow
def test_subscribe_messages_stay_under_five_per_second(
    kinesis: Any, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    natives = [f"C{i}USDT" for i in range(12)]
    scenario = Scenario(
        seed=4,
        symbols=tuple(
            SymbolSpec(
                symbol=f"C{i}-USDT", binance=n, coinbase=None, base_price=10.0 + i, trades_per_s=1.0
            )
            for i, n in enumerate(natives)
        ),
        # Silent until the producer has subscribed to all 12 streams: a REST baseline per
        # product, then 11 SUBSCRIBE messages 222 ms apart. A product with no trade yet has no
        # baseline, so its trades before its subscription are not ours (`TradeIdTracker`); 4 s
        # (40 simulated s) of silence was too short on a loaded machine.
        events=(SilentGap(start_s=0.0, duration_s=80.0),),
        duration_s=100.0,
    )
    monkeypatch.setattr(BinanceConnector, "url_streams_max", 1)  # 11 streams by message
    with SimulatorThread(scenario, speed=10.0) as sim:
        symbols = {f"C{i}-USDT": {"binance": n} for i, n in enumerate(natives)}
        # 8 s of silence is no stale connection here.
        settings = settings_for(sim, stream_name, symbols, stale_after_s=30.0)
        run = run_until_market_ends(sim, settings, kinesis)
        truth = sim.counters()["binance"]
        connections = sim.connections("binance")
    assert_complete(run)
    # The exchange never closed us for flooding (the reasons, should it have).
    assert len(connections) == 1, [c.close_reason for c in connections]
    assert connections[0].messages_received == 11
    assert set(connections[0].subscriptions) == {f"{n.lower()}@trade" for n in natives}
    assert set(truth.protocol_closes) <= {"client"}  # no rate_limit close
    assert {r["symbol"] for r in run.records} == set(symbols)


@pytest.mark.slow
def test_silent_connections_are_replaced_and_server_shutdown_is_obeyed(
    kinesis: Any, stream_name: str
) -> None:
    scenario = Scenario(
        seed=8,
        symbols=(SymbolSpec(trades_per_s=10.0),),
        # Quiet for less than the watchdog's 1 s: the first trade finds us connected.
        events=(SilentGap(start_s=0.0, duration_s=5.0),),
        faults=(
            GoSilent(at_trade=100, duration_s=3.0, exchange="coinbase"),
            GoSilent(at_trade=80, duration_s=3.0, exchange="binance"),
            ServerShutdown(at_trade=300),
        ),
        duration_s=QUIET_S + 60.0,
    )
    with SimulatorThread(scenario, speed=10.0) as sim:
        run = run_until_market_ends(
            sim, settings_for(sim, stream_name, BTC, stale_after_s=1.0), kinesis
        )
        truth = sim.counters()
    assert_complete(run)
    assert truth["binance"].shutdowns == 1
    assert truth["coinbase"].silences == 1
    assert truth["binance"].silences == 1
    coinbase, binance = run.final["exchanges"]["coinbase"], run.final["exchanges"]["binance"]
    assert coinbase["stale_reconnects"] >= 1
    assert binance["stale_reconnects"] >= 1
    assert binance["reconnects"] >= 2  # silence + serverShutdown
    assert binance["backfilled"] + coinbase["backfilled"] > 0


@pytest.mark.slow
def test_a_refused_coinbase_subscription_is_reported_and_binance_keeps_flowing(
    kinesis: Any, stream_name: str
) -> None:
    scenario = Scenario(
        seed=9,
        symbols=(SymbolSpec(trades_per_s=10.0),),
        events=(SilentGap(start_s=0.0, duration_s=QUIET_S),),
        duration_s=QUIET_S + 20.0,
    )
    symbols = {"BTC-USDT": {"binance": "BTCUSDT", "coinbase": "NOPE-USD"}}
    with SimulatorThread(scenario, speed=10.0) as sim:
        settings = settings_for(sim, stream_name, symbols)
        run = run_until_market_ends(sim, settings, kinesis, wait_ready=False)
    status, body = run.ready_at_start
    assert status == 503
    assert "coinbase not connected" in body["reasons"]
    assert run.exit_code == 0
    coinbase = run.final["exchanges"]["coinbase"]
    assert coinbase["reconnects"] >= 2  # it keeps trying, with backoff
    assert coinbase["received"] == 0
    assert {r["exchange"] for r in run.records} == {"binance"}
    assert {r["event_id"] for r in run.records} == {
        e for e in run.expected if e.startswith("binance:")
    }
