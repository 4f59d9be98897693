"""The HTTP health endpoint (aiohttp): liveness, readiness and counters for the Fargate check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from producer.connectors import ConnectorHealth


class HealthServer:
    """`GET /healthz` 200 while the event loop serves; `GET /readyz` 200 when every exchange is
    connected and the publisher is delivering, else 503 with the reasons; `GET /metrics` the
    counters as JSON."""

    def __init__(
        self,
        host: str,
        port: int,
        counters: Callable[[], dict[str, Any]],
        connectors: Callable[[], list[ConnectorHealth]],
        publisher_error: Callable[[], str | None],
    ) -> None:
        self.host = host
        self.port = port
        self._counters = counters
        self._connectors = connectors
        self._publisher_error = publisher_error
        self.stopping = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:  # report the port the OS chose
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def readiness(self) -> list[str]:
        """Why the producer is not ready; empty when it is."""
        reasons = [f"{c.exchange} not connected" for c in self._connectors() if not c.connected]
        error = self._publisher_error()
        if error:
            reasons.append(f"publisher: {error}")
        if self.stopping:
            reasons.append("shutting down")
        return reasons

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        reasons = self.readiness()
        return web.json_response(
            {"ready": not reasons, "reasons": reasons}, status=503 if reasons else 200
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        body = self._counters()
        body["connectors"] = [asdict(c) for c in self._connectors()]
        return web.json_response(body)
