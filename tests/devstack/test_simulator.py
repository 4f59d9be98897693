"""The exchange simulator over real sockets: Binance and Coinbase protocols, REST, faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from devstack.simulator import (
    BinanceConfig,
    CoinbaseConfig,
    DropConnections,
    GoSilent,
    Malformed,
    Rest429,
    Scenario,
    ServerShutdown,
    Simulator,
    SimulatorThread,
    SkipTradeIds,
    SymbolSpec,
    Whale,
    generate,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "exchanges"
REPO = Path(__file__).resolve().parents[2]
ETH = SymbolSpec("ETH-USDT", "ETHUSDT", "ETH-USD", base_price=3000.0, trades_per_s=5.0)
BINANCE_KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]


def fixture(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def scenario(**kwargs: Any) -> Scenario:
    kwargs.setdefault("seed", 5)
    kwargs.setdefault("symbols", (SymbolSpec(), ETH))
    return Scenario(**kwargs)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(scenario(), speed=40) as simulator:
        yield simulator


async def recv_json(ws: ClientConnection, wait_s: float = 3.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))


async def recv_until_closed(ws: ClientConnection, wait_s: float = 5.0) -> list[str]:
    frames: list[str] = []
    async with asyncio.timeout(wait_s):
        try:
            while True:
                frames.append(str(await ws.recv()))
        except ConnectionClosed:
            return frames


async def coinbase_subscribe(ws: ClientConnection, *products: str) -> None:
    await ws.send(
        json.dumps(
            {
                "type": "subscribe",
                "product_ids": list(products),
                "channels": ["matches", "heartbeat"],
            }
        )
    )


# ---- Binance WebSocket --------------------------------------------------------------------------


async def test_binance_combined_stream_routes_frames_shaped_like_the_real_ones(
    sim: Simulator,
) -> None:
    recorded = fixture("binance_trade_combined_2021.jsonl")[0]
    # Current frames are the recorded ones without the retired b/a keys.
    expected_keys = [k for k in recorded["data"] if k not in ("b", "a")]
    assert expected_keys == BINANCE_KEYS

    url = f"{sim.binance_ws_url}/stream?streams=btcusdt@trade/ethusdt@trade"
    async with connect(url) as ws:
        frames = [await recv_json(ws) for _ in range(60)]
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for frame in frames:
        assert list(frame) == ["stream", "data"]
        data = frame["data"]
        assert list(data) == BINANCE_KEYS
        assert frame["stream"] == f"{data['s'].lower()}@trade"
        assert data["e"] == "trade"
        assert data["M"] is True
        assert data["E"] >= data["T"]
        for key in ("p", "q"):
            assert isinstance(data[key], str)
            assert len(data[key].split(".")[1]) == 8
        by_stream.setdefault(frame["stream"], []).append(data)
    assert set(by_stream) == {"btcusdt@trade", "ethusdt@trade"}

    truth = {(t.product, t.trade_id): t for t in sim.trades("binance")}
    for data_list in by_stream.values():
        ids = [d["t"] for d in data_list]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # consecutive per symbol
        for d in data_list:
            trade = truth[(d["s"], d["t"])]
            assert (d["p"], d["q"], d["T"]) == (trade.price, trade.size, trade.time_ms)
            assert d["m"] is (trade.side == "sell")  # buyer is maker <=> taker sold


async def test_binance_raw_stream_and_unknown_stream(sim: Simulator) -> None:
    async with connect(f"{sim.binance_ws_url}/ws/ethusdt@trade") as raw:
        payloads = [await recv_json(raw) for _ in range(5)]
    assert all(list(p) == BINANCE_KEYS and p["s"] == "ETHUSDT" for p in payloads)
    async with connect(f"{sim.binance_ws_url}/ws/dogeusdt@trade") as unknown:
        with pytest.raises(TimeoutError):
            await recv_json(unknown, wait_s=0.3)  # no such stream: silence, like Binance
    assert sim.counters()["binance"].trades_published > 20


async def test_binance_answers_requests_and_records_them() -> None:
    async with (
        Simulator(scenario(), speed=20) as sim,
        connect(f"{sim.binance_ws_url}/stream") as ws,
    ):
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        replies: list[dict[str, Any]] = []
        async with asyncio.timeout(3):
            while len(replies) < 2:
                frame = await recv_json(ws)
                if "id" in frame:
                    replies.append(frame)
        assert replies == [{"result": None, "id": 1}, {"result": ["btcusdt@trade"], "id": 2}]
        frame = await recv_json(ws)
        assert frame["stream"] == "btcusdt@trade"
        (stats,) = sim.connections("binance")
        assert stats.messages_received == 2
        assert stats.subscriptions == ("btcusdt@trade",)


async def test_binance_closes_connections_sending_more_than_5_messages_per_second() -> None:
    async with Simulator(scenario(), speed=5) as sim:
        async with connect(f"{sim.binance_ws_url}/ws") as ws:
            for i in range(6):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            frames = await recv_until_closed(ws)
        assert [json.loads(f)["id"] for f in frames] == [0, 1, 2, 3, 4]
        assert ws.close_code == 1008
        (stats,) = sim.connections("binance")
        assert (stats.messages_received, stats.close_reason) == (6, "rate_limit")


async def test_binance_server_pings_keep_an_answering_connection_alive() -> None:
    config = BinanceConfig(ping_interval_s=0.05, pong_timeout_s=0.2)
    async with (
        Simulator(scenario(), speed=20, binance=config) as sim,
        connect(f"{sim.binance_ws_url}/ws/btcusdt@trade", ping_interval=None) as ws,
    ):
        async with asyncio.timeout(5):
            while sim.counters()["binance"].pongs_received < 5:
                await recv_json(ws)  # the client answers pings while reading
        assert (await recv_json(ws))["s"] == "BTCUSDT"
        (stats,) = sim.connections("binance")
        assert stats.close_reason is None
        assert stats.pongs_received >= 5


async def test_binance_drops_a_connection_that_does_not_answer_pings() -> None:
    config = BinanceConfig(ping_interval_s=0.05, pong_timeout_s=0.1)
    async with (
        Simulator(scenario(), speed=20, binance=config) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.binance_ws_url}/ws/btcusdt@trade", autoping=False) as ws,
    ):
        kinds = []
        async with asyncio.timeout(3):
            async for msg in ws:
                kinds.append(msg.type)
        assert aiohttp.WSMsgType.PING in kinds
        (stats,) = sim.connections("binance")
        assert stats.close_reason == "pong_timeout"
        assert stats.pongs_received == 0


async def test_binance_closes_connections_at_the_age_limit() -> None:
    config = BinanceConfig(max_connection_s=0.3)
    async with (
        Simulator(scenario(), speed=20, binance=config) as sim,
        connect(f"{sim.binance_ws_url}/ws/btcusdt@trade") as ws,
    ):
        frames = await recv_until_closed(ws)
        assert frames
        assert sim.connections("binance")[0].close_reason == "max_age"


# ---- Binance REST -------------------------------------------------------------------------------


async def test_binance_historical_trades_paging_weight_and_429() -> None:
    sc = scenario(faults=(Rest429(at_request_n=5, retry_after_s=7, exchange="binance"),))
    config = BinanceConfig(rest_weight_limit_1m=25 * 5)
    async with Simulator(sc, speed=50, binance=config) as sim, aiohttp.ClientSession() as http:
        await sim.wait_for_trades(200)
        sim.stop_market()
        url = f"{sim.binance_rest_url}/api/v3/historicalTrades"
        truth = sim.emitted()[("binance", "BTCUSDT")]
        first = sim.first_trade_id("binance", "BTCUSDT")
        assert truth[0] == first

        async with http.get(url, params={"symbol": "BTCUSDT", "fromId": first, "limit": 10}) as r:
            assert r.status == 200
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "25"
            page1 = await r.json()
        assert [t["id"] for t in page1] == truth[:10]
        assert list(page1[0]) == [
            "id",
            "price",
            "qty",
            "quoteQty",
            "time",
            "isBuyerMaker",
            "isBestMatch",
        ]
        trade = next(t for t in sim.trades("binance") if t.trade_id == first)
        assert page1[0]["price"] == trade.price
        assert page1[0]["isBuyerMaker"] is (trade.side == "sell")

        async with http.get(url, params={"symbol": "BTCUSDT", "fromId": page1[-1]["id"] + 1}) as r:
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "50"
            page2 = await r.json()
        assert [t["id"] for t in page2] == truth[10:510]  # default limit 500

        async with http.get(url, params={"symbol": "BTCUSDT", "limit": 3}) as r:
            assert [t["id"] for t in await r.json()] == truth[-3:]  # no fromId: the latest
        async with http.get(url, params={"symbol": "BTCUSDT", "fromId": truth[-1] + 1}) as r:
            assert await r.json() == []  # nothing has happened after the last trade

        async with http.get(url, params={"symbol": "BTCUSDT"}) as r:
            assert r.status == 429  # the scripted Rest429 on request 5
            assert r.headers["Retry-After"] == "7"
            assert (await r.json())["code"] == -1003

        async with http.get(url, params={"symbol": "DOGEUSDT"}) as r:
            assert r.status == 400
            assert await r.json() == {"code": -1121, "msg": "Invalid symbol."}
        async with http.get(url, params={"symbol": "BTCUSDT"}) as r:
            assert r.status == 429  # 5 x 25 weight spent (not by the 429): over the budget
            assert 1 <= int(r.headers["Retry-After"]) <= 60
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "125"
        async with http.get(f"{sim.binance_rest_url}/api/v3/ping") as r:
            assert r.status == 429
        counters = sim.counters()["binance"]
        assert (counters.rest_requests, counters.rest_429s) == (8, 3)


async def test_binance_ping_endpoint(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.binance_rest_url}/api/v3/ping") as r,
    ):
        assert r.status == 200
        assert await r.json() == {}
        assert r.headers["X-MBX-USED-WEIGHT-1M"] == "1"


# ---- Coinbase WebSocket -------------------------------------------------------------------------


async def test_coinbase_requires_a_subscribe_within_the_deadline() -> None:
    config = CoinbaseConfig(subscribe_timeout_s=0.2)
    async with (
        Simulator(scenario(), speed=10, coinbase=config) as sim,
        connect(sim.coinbase_ws_url) as ws,
    ):
        frames = [json.loads(f) for f in await recv_until_closed(ws)]
        assert len(frames) == 1
        assert frames[0]["type"] == "error"
        assert frames[0]["message"] == "Failed to subscribe"
        assert "within 0.2 seconds" in frames[0]["reason"]
        assert sim.connections("coinbase")[0].close_reason == "subscribe_timeout"


async def test_coinbase_feed_sequence_with_heartbeats() -> None:
    recorded = fixture("coinbase_exchange_matches_2021.jsonl")
    match_keys = next(list(f) for f in recorded if f["type"] == "match")
    last_match_keys = next(list(f) for f in recorded if f["type"] == "last_match")
    config = CoinbaseConfig(heartbeat_interval_s=0.1)
    async with Simulator(scenario(), speed=20, coinbase=config) as sim:
        await sim.wait_for_trades(20)
        frames = await subscribe_and_collect(sim)
        truth = {(t.product, t.trade_id): t for t in sim.trades("coinbase")}

    last_matches = [f for f in frames[:2] if f["type"] == "last_match"]
    assert sorted(f["product_id"] for f in last_matches) == ["BTC-USD", "ETH-USD"]
    assert all(list(f) == last_match_keys for f in last_matches)
    last_id = {f["product_id"]: f["trade_id"] for f in last_matches}
    sequences: dict[str, list[int]] = {}
    for frame in frames[2:]:
        product = frame["product_id"]
        if frame["type"] == "heartbeat":
            assert list(frame) == ["type", "sequence", "last_trade_id", "product_id", "time"]
            assert product == "BTC-USD"
            assert frame["last_trade_id"] == last_id[product]  # every match arrived before it
            continue
        assert frame["type"] == "match"
        assert list(frame) == match_keys
        assert frame["trade_id"] == last_id[product] + 1
        last_id[product] = frame["trade_id"]
        sequences.setdefault(product, []).append(frame["sequence"])
        trade = truth[(product, frame["trade_id"])]
        assert frame["side"] == ("sell" if trade.side == "buy" else "buy")  # maker side
        assert (frame["price"], frame["size"], frame["time"]) == (
            trade.price,
            trade.size,
            trade.timestamp,
        )
    for seq in sequences.values():
        steps = [b - a for a, b in itertools.pairwise(seq)]
        assert all(step > 0 for step in steps)
        assert any(step > 1 for step in steps)  # increasing, not consecutive


async def subscribe_and_collect(sim: Simulator) -> list[dict[str, Any]]:
    """An invalid subscribe (error, ignored), a valid one, then frames up to the 3rd heartbeat."""
    async with connect(sim.coinbase_ws_url) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "product_ids": ["BTC-USD", "DOGE-USD"],
                    "channels": ["matches"],
                }
            )
        )
        error = await recv_json(ws)
        assert error == {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": "DOGE-USD is not a valid product",
        }
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "channels": [
                        {"name": "matches", "product_ids": ["BTC-USD", "ETH-USD"]},
                        {"name": "heartbeat", "product_ids": ["BTC-USD"]},
                    ],
                }
            )
        )
        assert await recv_json(ws) == {
            "type": "subscriptions",
            "channels": [
                {"name": "matches", "product_ids": ["BTC-USD", "ETH-USD"]},
                {"name": "heartbeat", "product_ids": ["BTC-USD"]},
            ],
        }
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while sum(f["type"] == "heartbeat" for f in frames) < 3:
                frames.append(await recv_json(ws))
    return frames


# ---- Coinbase REST ------------------------------------------------------------------------------


async def test_coinbase_trades_cursor_paging_and_rate_limit() -> None:
    sc = scenario(faults=(Rest429(at_request_n=6, retry_after_s=3, exchange="coinbase"),))
    config = CoinbaseConfig(rest_requests_per_s=5)
    async with Simulator(sc, speed=50, coinbase=config) as sim, aiohttp.ClientSession() as http:
        await sim.wait_for_trades(100)
        sim.stop_market()
        truth = sim.emitted()[("coinbase", "BTC-USD")]
        url = f"{sim.coinbase_rest_url}/products/BTC-USD/trades"

        async with http.get(url, params={"limit": 5}) as r:
            newest = await r.json()
            headers = r.headers
        assert [t["trade_id"] for t in newest] == truth[-5:][::-1]
        assert list(newest[0]) == ["time", "trade_id", "price", "size", "side"]
        assert (headers["CB-BEFORE"], headers["CB-AFTER"]) == (str(truth[-1]), str(truth[-5]))
        trade = next(t for t in sim.trades("coinbase") if t.trade_id == truth[-1])
        assert newest[0]["side"] == trade.maker_side
        assert newest[0]["time"] == trade.timestamp

        async with http.get(url, params={"limit": 5, "after": headers["CB-AFTER"]}) as r:
            older = await r.json()
        assert [t["trade_id"] for t in older] == truth[-10:-5][::-1]

        async with http.get(url, params={"limit": 3, "before": truth[2]}) as r:
            newer = await r.json()
            assert r.headers["CB-BEFORE"] == str(truth[5])
        assert [t["trade_id"] for t in newer] == truth[3:6][::-1]

        async with http.get(f"{sim.coinbase_rest_url}/products/DOGE-USD/trades") as r:
            assert r.status == 404
            assert await r.json() == {"message": "NotFound"}
        async with http.get(url, params={"before": truth[-1]}) as r:
            assert await r.json() == []
            assert "CB-BEFORE" not in r.headers
        async with http.get(url) as r:
            assert r.status == 429  # the scripted Rest429 on request 6
            assert r.headers["Retry-After"] == "3"
            assert await r.json() == {"message": "Public rate limit exceeded"}
        async with http.get(url) as r:
            assert r.status == 429  # 6 requests within a second: over the public limit
            assert r.headers["Retry-After"] == "1"
        assert sim.counters()["coinbase"].rest_429s == 2


# ---- faults -------------------------------------------------------------------------------------


async def test_drop_connections_every_n_trades_without_close_frame() -> None:
    sc = scenario(symbols=(SymbolSpec(),), faults=(DropConnections(25, exchange="binance"),))
    async with Simulator(sc, speed=50) as sim:
        for _ in range(2):
            async with connect(f"{sim.binance_ws_url}/ws/btcusdt@trade") as ws:
                frames = await recv_until_closed(ws)
            assert len(frames) == 25
            assert ws.close_code == 1006  # abnormal closure: no close frame received
        counters = sim.counters()["binance"]
        assert (counters.drops, counters.connections_accepted) == (2, 2)


async def test_skipped_trade_ids_are_missing_on_the_feed_but_in_rest() -> None:
    sc = scenario(
        symbols=(SymbolSpec(),), faults=(SkipTradeIds(at_trade=40, count=3, exchange="coinbase"),)
    )
    async with Simulator(sc, speed=20) as sim:
        async with connect(sim.coinbase_ws_url) as ws:
            await coinbase_subscribe(ws, "BTC-USD")
            ids: list[int] = []
            async with asyncio.timeout(5):
                while len(ids) < 60:
                    frame = await recv_json(ws)
                    if frame["type"] == "match":
                        ids.append(frame["trade_id"])
        first = sim.first_trade_id("coinbase", "BTC-USD")
        skipped = [first + 39, first + 40, first + 41]  # trades 40..42 of the exchange
        assert ids[0] < skipped[0]
        assert not set(skipped) & set(ids)
        assert ids == [i for i in range(ids[0], ids[-1] + 1) if i not in skipped]
        assert set(skipped) <= set(sim.emitted()[("coinbase", "BTC-USD")])
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{sim.coinbase_rest_url}/products/BTC-USD/trades",
                params={"before": skipped[0] - 1, "limit": 3},
            ) as r,
        ):
            assert [t["trade_id"] for t in await r.json()] == skipped[::-1]
        assert sim.counters()["coinbase"].trades_skipped == 3


async def test_malformed_frames_are_sent_once() -> None:
    sc = scenario(symbols=(SymbolSpec(),), faults=(Malformed(at_trade=30, exchange="binance"),))
    async with (
        Simulator(sc, speed=20) as sim,
        connect(f"{sim.binance_ws_url}/stream?streams=btcusdt@trade") as ws,
    ):
        frames = [str(await asyncio.wait_for(ws.recv(), 3)) for _ in range(45)]
    bad = []
    for i, text in enumerate(frames):
        try:
            frame = json.loads(text)
        except json.JSONDecodeError:
            bad.append((i, "truncated"))
            continue
        if set(frame["data"]) != set(BINANCE_KEYS):
            bad.append((i, "missing fields"))
    assert [kind for _, kind in bad] == ["truncated", "missing fields"]
    assert bad[1][0] == bad[0][0] + 1
    after = json.loads(frames[bad[1][0] + 1])["data"]
    assert after["t"] == sim.first_trade_id("binance", "BTCUSDT") + 29
    assert sim.counters()["binance"].malformed_frames_sent == 2


async def test_binance_server_shutdown_event_then_close() -> None:
    sc = scenario(symbols=(SymbolSpec(),), faults=(ServerShutdown(at_trade=30),))
    async with (
        Simulator(sc, speed=20) as sim,
        connect(f"{sim.binance_ws_url}/ws/btcusdt@trade") as ws,
    ):
        frames = [json.loads(f) for f in await recv_until_closed(ws)]
        assert frames[-1]["e"] == "serverShutdown"
        assert isinstance(frames[-1]["E"], int)
        assert all(f["e"] == "trade" for f in frames[:-1])
        assert ws.close_code == 1001
        assert sim.counters()["binance"].shutdowns == 1


async def test_go_silent_keeps_the_connection_open_without_frames() -> None:
    sc = scenario(
        symbols=(SymbolSpec(),), faults=(GoSilent(at_trade=20, duration_s=0.5, exchange="binance"),)
    )
    async with (
        Simulator(sc, speed=20) as sim,
        connect(f"{sim.binance_ws_url}/ws/btcusdt@trade") as ws,
    ):
        loop = asyncio.get_running_loop()
        stamps = []
        ids = []
        for _ in range(30):
            ids.append((await recv_json(ws))["t"])
            stamps.append(loop.time())
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert max(gaps) >= 0.45
        missed = ids[gaps.index(max(gaps)) + 1] - ids[gaps.index(max(gaps))] - 1
        assert missed > 10  # about 0.5 s x 20 x 5 trades/s were not sent
        assert sim.counters()["binance"].trades_silenced == missed


# ---- scripted market over the wire, thread runner, CLI -------------------------------------------


async def test_scripted_whale_arrives_with_its_quote_volume() -> None:
    whale = Whale(
        at_s=3.0, exchange="coinbase", symbol="BTC-USDT", quote_volume=400_000, side="buy"
    )
    sc = scenario(symbols=(SymbolSpec(),), events=(whale,), duration_s=4.0)
    async with Simulator(sc, speed=10) as sim, connect(sim.coinbase_ws_url) as ws:
        await coinbase_subscribe(ws, "BTC-USD")
        async with asyncio.timeout(5):
            while True:
                frame = await recv_json(ws)
                if frame["type"] == "match" and frame["time"] == "2026-01-01T00:00:03.000000Z":
                    break
        assert float(frame["price"]) * float(frame["size"]) == pytest.approx(400_000, rel=1e-5)
        assert frame["side"] == "sell"  # maker side of a taker buy
        (scripted,) = [t for t in sim.trades() if t.whale]
        assert frame["trade_id"] == scripted.trade_id
        await sim.wait_until_ended(timeout=5)
        assert sim.trades() == generate(sc, 4.0)  # same trades as the pure generator


def test_simulator_thread_serves_from_a_background_loop() -> None:
    with SimulatorThread(scenario(), speed=40) as sim:
        trades = sim.wait_for_trades(50, timeout=5)
        assert len(trades) >= 50
        emitted = sim.emitted()
        assert set(emitted) == {
            ("binance", "BTCUSDT"),
            ("binance", "ETHUSDT"),
            ("coinbase", "BTC-USD"),
            ("coinbase", "ETH-USD"),
        }

        async def fetch() -> list[dict[str, Any]]:
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    f"{sim.binance_rest_url}/api/v3/trades",
                    params={"symbol": "ETHUSDT", "limit": 5},
                ) as r,
            ):
                result: list[dict[str, Any]] = await r.json()
                return result

        latest = asyncio.run(fetch())
        assert len(latest) == 5
        assert {t["id"] for t in latest} <= set(sim.emitted()[("binance", "ETHUSDT")])
        sim.stop_market()
        assert sim.trades() == sim.trades()
    with pytest.raises(RuntimeError, match="not running"):
        sim.emitted()


def test_command_line_prints_urls_and_exits_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    scenario(duration_s=60).dump(path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.simulator",
            "--seed",
            "7",
            "--speed",
            "60",
            "--scenario",
            str(path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert sorted(urls) == [
            "binance_rest_url",
            "binance_ws_url",
            "coinbase_rest_url",
            "coinbase_ws_url",
        ]
        assert urls["binance_ws_url"].startswith("ws://127.0.0.1:")

        async def ping() -> int:
            async with (
                aiohttp.ClientSession() as http,
                http.get(urls["binance_rest_url"] + "/api/v3/ping") as r,
            ):
                return r.status

        assert asyncio.run(ping()) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
