"""The exchange simulator: a seeded market served as Binance and Coinbase on 127.0.0.1.

    async with Simulator(Scenario(seed=7), speed=60) as sim:
        ...  # point the producer at sim.binance_ws_url, sim.coinbase_ws_url, …
        await sim.wait_for_trades(100, timeout=10)
        truth = sim.emitted()  # {(exchange, product): [trade ids that happened]}

`speed` is simulated seconds per real second. A clock task generates, every `tick_s` real
seconds, the trades that have happened by now (and so does every REST request and Coinbase
subscription, so they always see the present) and publishes them to the exchange they belong
to, which logs them for REST and sends them to its subscribed WebSocket connections, applying
the scenario's faults. `SimulatorThread` runs the same thing on its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from devstack.simulator.binance import BinanceConfig, BinanceServer
from devstack.simulator.coinbase import CoinbaseConfig, CoinbaseServer
from devstack.simulator.feed import Clock, ConnectionStats, ExchangeCounters, ExchangeServer
from devstack.simulator.market import (
    BINANCE,
    COINBASE,
    EXCHANGES,
    Market,
    Scenario,
    Trade,
    epoch_us,
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class SimulatorUrls:
    binance_ws_url: str
    binance_rest_url: str
    coinbase_ws_url: str
    coinbase_rest_url: str


class Simulator:
    """Both simulated exchanges over real sockets, driven by one `Market`.

    `end_at_s` (simulated seconds) stops trade generation there; it defaults to the scenario's
    `duration_s` (None: never). `clock` is the real-time source (monotonic seconds) behind the
    simulated clock, the REST rate limits and GoSilent. Port 0 picks a free port.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        binance_port: int = 0,
        coinbase_port: int = 0,
        end_at_s: float | None = None,
        clock: Clock = time.monotonic,
        tick_s: float = 0.01,
        binance: BinanceConfig | None = None,
        coinbase: CoinbaseConfig | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.scenario = scenario
        self.speed = speed
        self.host = host
        self.end_at_s = end_at_s if end_at_s is not None else scenario.duration_s
        self._ports = {BINANCE: binance_port, COINBASE: coinbase_port}
        self._clock = clock
        self._tick_s = tick_s
        self._market = Market(scenario)
        self._start_us = epoch_us(scenario.start)
        self._t0: float | None = None
        self._trades: list[Trade] = []
        self._market_stopped = False
        self._changed = asyncio.Event()
        common: dict[str, Any] = {"market": self, "faults": scenario.faults, "clock": clock}
        self._exchanges: dict[str, ExchangeServer] = {
            BINANCE: BinanceServer(
                products=scenario.products(BINANCE),
                first_trade_ids=self._first_ids(BINANCE),
                config=binance or BinanceConfig(),
                **common,
            ),
            COINBASE: CoinbaseServer(
                products=scenario.products(COINBASE),
                first_trade_ids=self._first_ids(COINBASE),
                config=coinbase or CoinbaseConfig(),
                **common,
            ),
        }
        self._runners: list[web.AppRunner] = []
        self._bound_ports: dict[str, int] = {}
        self._ticker: asyncio.Task[None] | None = None

    def _first_ids(self, exchange: str) -> dict[str, int]:
        return {
            p: self._market.first_trade_id(exchange, p) for p in self.scenario.products(exchange)
        }

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on both ports, then start the market clock at simulated second 0."""
        self._changed = asyncio.Event()  # bound to the running loop
        for exchange, server in self._exchanges.items():
            runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, self.host, self._ports[exchange])
            await site.start()
            self._bound_ports[exchange] = int(runner.addresses[0][1])
        self._t0 = self._clock()
        for server in self._exchanges.values():
            await server.start()
        self._ticker = asyncio.create_task(self._run_clock(), name="simulator-clock")

    async def stop(self) -> None:
        """Stop the clock, close every connection (close frame 1001) and both servers."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for server in self._exchanges.values():
            await server.stop()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run_clock(self) -> None:
        while True:
            self.catch_up()
            await asyncio.sleep(self._tick_s)

    # ---- URLs --------------------------------------------------------------------------------

    def _port(self, exchange: str) -> int:
        if exchange not in self._bound_ports:
            raise RuntimeError("simulator not started")
        return self._bound_ports[exchange]

    @property
    def binance_ws_url(self) -> str:
        """Base of the streams: append `/stream?streams=…` or `/ws/<stream>`."""
        return f"ws://{self.host}:{self._port(BINANCE)}"

    @property
    def binance_rest_url(self) -> str:
        """Base of the REST API: append `/api/v3/historicalTrades?…`."""
        return f"http://{self.host}:{self._port(BINANCE)}"

    @property
    def coinbase_ws_url(self) -> str:
        """The feed itself (path `/`)."""
        return f"ws://{self.host}:{self._port(COINBASE)}"

    @property
    def coinbase_rest_url(self) -> str:
        """Base of the REST API: append `/products/BTC-USD/trades`."""
        return f"http://{self.host}:{self._port(COINBASE)}"

    def urls(self) -> SimulatorUrls:
        return SimulatorUrls(
            binance_ws_url=self.binance_ws_url,
            binance_rest_url=self.binance_rest_url,
            coinbase_ws_url=self.coinbase_ws_url,
            coinbase_rest_url=self.coinbase_rest_url,
        )

    # ---- clock and market --------------------------------------------------------------------

    @property
    def sim_time_s(self) -> float:
        """Simulated seconds since the scenario start (0 before `start`)."""
        if self._t0 is None:
            return 0.0
        return (self._clock() - self._t0) * self.speed

    def sim_time_us(self) -> int:
        """Simulated exchange time now, microseconds since the epoch."""
        return self._start_us + int(self.sim_time_s * 1_000_000)

    @property
    def market_ended(self) -> bool:
        """True once the market has generated everything up to `end_at_s`."""
        return self.end_at_s is not None and self._market.generated_until_s >= self.end_at_s

    @property
    def market_stopped(self) -> bool:
        return self._market_stopped

    def catch_up(self) -> None:
        """Generate the trades that have happened by now and publish them."""
        if self._market_stopped or self._t0 is None:
            return
        until = self.sim_time_s
        if self.end_at_s is not None:
            until = min(until, self.end_at_s)
        ended_before = self.market_ended
        trades = self._market.advance(until)
        for trade in trades:
            self._trades.append(trade)
            self._exchanges[trade.exchange].publish(trade)
        if trades or self.market_ended != ended_before:
            self._changed.set()
            self._changed = asyncio.Event()

    def stop_market(self) -> None:
        """Generate up to now, then no new trades; keep serving WebSocket and REST."""
        self.catch_up()
        self._market_stopped = True
        self._changed.set()
        self._changed = asyncio.Event()

    # `timeout` parameters: the waits are the simulator's public API, used from sync code through
    # SimulatorThread too, where asyncio.timeout is not available.
    async def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"simulator: {what} not reached within {timeout} s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, self._tick_s * 10))

    async def wait_for_trades(self, n: int, timeout: float = 10.0) -> list[Trade]:  # noqa: ASYNC109
        """Wait until at least `n` trades happened (all exchanges); returns them all."""
        await self._wait(lambda: len(self._trades) >= n, timeout, f"{n} trades")
        return self.trades()

    async def wait_until_ended(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the market reached `end_at_s` (ValueError when there is none)."""
        if self.end_at_s is None:
            raise ValueError("no end_at_s: the market never ends")
        await self._wait(lambda: self.market_ended, timeout, f"sim time {self.end_at_s} s")

    # ---- ground truth and counters -----------------------------------------------------------

    def trades(self, exchange: str | None = None) -> list[Trade]:
        """Every trade that happened so far, in time order (a copy)."""
        if exchange is None:
            return list(self._trades)
        return [t for t in self._trades if t.exchange == exchange]

    def emitted(self) -> dict[tuple[str, str], list[int]]:
        """{(exchange, native product): trade ids that happened so far, ascending}, for every
        listed product (empty list before its first trade)."""
        return {
            (exchange, product): [t.trade_id for t in server.trades(product)]
            for exchange, server in self._exchanges.items()
            for product in server.products
        }

    def first_trade_id(self, exchange: str, product: str) -> int:
        return self._market.first_trade_id(exchange, product)

    def counters(self) -> dict[str, ExchangeCounters]:
        """{exchange: counters snapshot}."""
        return {name: server.counters_snapshot() for name, server in self._exchanges.items()}

    def connections(self, exchange: str | None = None) -> list[ConnectionStats]:
        """Snapshots of every WebSocket connection accepted so far (open and closed)."""
        names = EXCHANGES if exchange is None else (exchange,)
        return [c for name in names for c in self._exchanges[name].connections_snapshot()]


class SimulatorThread:
    """A `Simulator` on its own event loop in a daemon thread, for tests whose code under test
    runs in another loop or process. Accessors return snapshots taken on the simulator's loop.

        with SimulatorThread(scenario, speed=100) as sim:
            run_producer(sim.binance_ws_url, …)
            sim.wait_for_trades(500, timeout=10)
    """

    def __init__(self, scenario: Scenario, **simulator_kwargs: Any) -> None:
        self.scenario = scenario
        self._kwargs = simulator_kwargs
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: Simulator | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._urls: SimulatorUrls | None = None

    def start(self, timeout: float = 10.0) -> Self:
        self._thread = threading.Thread(target=self._run, name="exchange-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("simulator thread did not start")
        if self._error is not None:
            raise RuntimeError("simulator thread failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("simulator thread did not stop")
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            async with Simulator(self.scenario, **self._kwargs) as sim:
                self._sim = sim
                self._urls = sim.urls()
                self._ready.set()
                await self._stop_event.wait()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()

    # ---- cross-thread calls ------------------------------------------------------------------

    def _require(self) -> tuple[asyncio.AbstractEventLoop, Simulator]:
        if self._loop is None or self._sim is None or self._thread is None:
            raise RuntimeError("simulator thread not running")
        return self._loop, self._sim

    def _call(self, fn: Callable[[Simulator], _T], timeout: float = 10.0) -> _T:
        loop, sim = self._require()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(sim))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def _await(self, make: Callable[[Simulator], Coroutine[Any, Any, _T]], timeout: float) -> _T:
        loop, sim = self._require()
        return asyncio.run_coroutine_threadsafe(make(sim), loop).result(timeout + 5.0)

    def _url(self) -> SimulatorUrls:
        if self._urls is None:
            raise RuntimeError("simulator thread not running")
        return self._urls

    @property
    def binance_ws_url(self) -> str:
        return self._url().binance_ws_url

    @property
    def binance_rest_url(self) -> str:
        return self._url().binance_rest_url

    @property
    def coinbase_ws_url(self) -> str:
        return self._url().coinbase_ws_url

    @property
    def coinbase_rest_url(self) -> str:
        return self._url().coinbase_rest_url

    def urls(self) -> SimulatorUrls:
        return self._url()

    @property
    def sim_time_s(self) -> float:
        return self._call(lambda sim: sim.sim_time_s)

    @property
    def market_ended(self) -> bool:
        return self._call(lambda sim: sim.market_ended)

    def trades(self, exchange: str | None = None) -> list[Trade]:
        return self._call(lambda sim: sim.trades(exchange))

    def emitted(self) -> dict[tuple[str, str], list[int]]:
        return self._call(lambda sim: sim.emitted())

    def first_trade_id(self, exchange: str, product: str) -> int:
        return self._call(lambda sim: sim.first_trade_id(exchange, product))

    def counters(self) -> dict[str, ExchangeCounters]:
        return self._call(lambda sim: sim.counters())

    def connections(self, exchange: str | None = None) -> list[ConnectionStats]:
        return self._call(lambda sim: sim.connections(exchange))

    def stop_market(self) -> None:
        self._call(lambda sim: sim.stop_market())

    def wait_for_trades(self, n: int, timeout: float = 10.0) -> list[Trade]:
        return self._await(lambda sim: sim.wait_for_trades(n, timeout), timeout)

    def wait_until_ended(self, timeout: float = 10.0) -> None:
        self._await(lambda sim: sim.wait_until_ended(timeout), timeout)
