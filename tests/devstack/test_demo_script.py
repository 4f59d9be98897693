"""The demo's own judgement, without running it: the scripted market and the check of the
findings against the script (a demo that could not say "MISSED" would prove nothing)."""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.demo import (
    BASELINE_MIN_WINDOWS,
    MIN_MINUTES,
    TAIL_S,
    check_script,
    demo_scenario,
    parse_args,
    window_floor,
)
from devstack.simulator import Dislocation, SilentGap, VolumeBurst, Whale
from devstack.simulator.market import generate

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def events_of(scenario: Any, kind: type) -> list[Any]:
    return [e for e in scenario.events if isinstance(e, kind)]


@pytest.mark.parametrize("minutes", [MIN_MINUTES, 25.0, 90.0])
def test_the_script_fits_the_market_and_keeps_its_events_apart(minutes: float) -> None:
    scenario = demo_scenario(7, minutes, START)
    scripted_end = minutes * 60 - TAIL_S
    (burst,) = events_of(scenario, VolumeBurst)
    (dislocation,) = events_of(scenario, Dislocation)
    (gap,) = events_of(scenario, SilentGap)
    whales = events_of(scenario, Whale)
    assert len(whales) == 5
    assert burst.start_s >= BASELINE_MIN_WINDOWS * 60  # the detector's baseline comes first
    assert dislocation.end_s - dislocation.start_s >= 60  # at least two 30 s spread windows
    assert dislocation.pct > 0.5
    for event in (burst, dislocation, gap, *whales):
        assert 0 < getattr(event, "start_s", getattr(event, "at_s", 0)) < scripted_end
    # No whale inside the burst's baseline on its own exchange/symbol (it would widen it).
    for whale in whales:
        if (whale.exchange, whale.symbol) == (burst.exchange, burst.symbol):
            assert whale.at_s > burst.end_s


def test_a_market_shorter_than_the_script_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        demo_scenario(7, MIN_MINUTES - 1, START)


def found_everything(scenario: Any) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """The trades the simulator emits and the alerts a working pipeline writes for them."""
    trades = generate(scenario, scenario.duration_s)
    alerts: list[dict[str, Any]] = []
    for trade in trades:
        if trade.whale:
            alerts.append(
                {
                    "alert_id": f"whale:{trade.event_id}",
                    "alert_type": "WHALE_TRADE",
                    "exchange": trade.exchange,
                    "symbol": trade.symbol,
                    "metric": trade.quote_volume,
                    "event_time": datetime.fromtimestamp(trade.time_us / 1e6, UTC),
                }
            )
    (burst,) = events_of(scenario, VolumeBurst)
    minute = window_floor(scenario.start + timedelta(seconds=burst.start_s), 60)
    alerts.append(
        {
            "alert_id": f"volume_anomaly:{burst.exchange}:{burst.symbol}:{minute:%H:%M}",
            "alert_type": "VOLUME_SPIKE",
            "exchange": burst.exchange,
            "symbol": burst.symbol,
            "metric": 12.5,
            "event_time": minute.replace(tzinfo=None),  # Iceberg reads back naive UTC
        }
    )
    (dislocation,) = events_of(scenario, Dislocation)
    window = scenario.start + timedelta(seconds=dislocation.start_s + 30)
    alerts.append(
        {
            "alert_id": f"spread:{dislocation.symbol}:{window:%H:%M:%S}",
            "alert_type": "WIDE_SPREAD",
            "exchange": "ALL",
            "symbol": dislocation.symbol,
            "metric": 1.19,
            "event_time": window,
        }
    )
    archived = collections.Counter(t.event_id for t in trades)
    return trades, alerts, archived


def test_every_scripted_event_found_passes_every_check() -> None:
    scenario = demo_scenario(7, MIN_MINUTES, START)
    trades, alerts, archived = found_everything(scenario)
    results = check_script(scenario, trades, alerts, archived, 30)
    assert [r.ok for r in results] == [True] * 8, [r for r in results if not r.ok]
    assert "z = 12.5" in next(r.found for r in results if "burst" in r.what)  # type: ignore[operator]
    assert "1 WIDE_SPREAD windows, widest 1.19 %" in str(results[-2].found)
    assert f"raw_trades holds {len(trades):,} rows" in str(results[-1].found)


def test_a_missing_whale_alert_is_reported_missed() -> None:
    scenario = demo_scenario(7, MIN_MINUTES, START)
    trades, alerts, archived = found_everything(scenario)
    whale_alerts = [a for a in alerts if a["alert_type"] == "WHALE_TRADE"]
    dropped = whale_alerts[2]
    alerts.remove(dropped)
    results = check_script(scenario, trades, alerts, archived, 30)
    missed = [r for r in results if not r.ok]
    assert len(missed) == 1
    assert missed[0].what.startswith("whale ")
    assert dropped["exchange"] in missed[0].what
    assert dropped["symbol"] in missed[0].what


def test_a_whale_alert_with_the_wrong_size_does_not_count() -> None:
    scenario = demo_scenario(7, MIN_MINUTES, START)
    trades, alerts, archived = found_everything(scenario)
    alerts[0]["metric"] *= 1.01
    results = check_script(scenario, trades, alerts, archived, 30)
    assert [r.ok for r in results].count(False) == 1


def test_alerts_outside_the_scripted_windows_do_not_count() -> None:
    scenario = demo_scenario(7, MIN_MINUTES, START)
    trades, alerts, archived = found_everything(scenario)
    for alert in alerts:
        if alert["alert_type"] in ("VOLUME_SPIKE", "WIDE_SPREAD"):
            alert["event_time"] = scenario.start  # the market's first minute: not the script's
    results = check_script(scenario, trades, alerts, archived, 30)
    missed = {r.what.split()[0] for r in results if not r.ok}
    assert missed == {"volume", "dislocation"}


def test_a_spike_on_another_exchange_is_not_the_burst() -> None:
    scenario = demo_scenario(7, MIN_MINUTES, START)
    trades, alerts, archived = found_everything(scenario)
    spike = next(a for a in alerts if a["alert_type"] == "VOLUME_SPIKE")
    spike["exchange"] = "binance" if spike["exchange"] == "coinbase" else "coinbase"
    results = check_script(scenario, trades, alerts, archived, 30)
    assert [r.what.split()[0] for r in results if not r.ok] == ["volume"]


@pytest.mark.parametrize("change", ["missing", "duplicated"])
def test_a_trade_archived_zero_or_two_times_fails_the_archive_check(change: str) -> None:
    scenario = demo_scenario(7, MIN_MINUTES, START)
    trades, alerts, archived = found_everything(scenario)
    some_id = trades[100].event_id
    if change == "missing":
        del archived[some_id]
    else:
        archived[some_id] += 1
    results = check_script(scenario, trades, alerts, archived, 30)
    assert [r.ok for r in results] == [True] * 7 + [False]


def test_options() -> None:
    default = parse_args([])
    assert (default.minutes, default.speed, default.live) == (90.0, 30.0, False)
    short = parse_args(["--short", "--workdir", "/tmp/x"])
    assert (short.minutes, short.speed, str(short.workdir)) == (25.0, 60.0, "/tmp/x")
    live = parse_args(["--live", "--minutes", "5"])
    assert (live.minutes, live.speed, live.live) == (5.0, 1.0, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--live", "--speed", "10"], "--live runs in real time"),
        (["--minutes", "10"], "at least 20"),
        (["--speed", "0"], "must be > 0"),
    ],
)
def test_bad_options_are_refused_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
