"""Wires the producer: connectors -> bounded queue -> Kinesis publisher, plus the health server,
and the stop sequence (stop intake, drain under a deadline, flush, close)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from producer.batching import Record
from producer.connectors import BaseConnector, BinanceConnector, CoinbaseConnector
from producer.errors import ConfigError
from producer.events import TradeEvent
from producer.health import HealthServer
from producer.metrics import ProducerCounters
from producer.publisher import KinesisPublisher, Spill, to_record
from producer.settings import ProducerSettings

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

log = logging.getLogger(__name__)

CONNECTOR_CLASSES: dict[str, type[BinanceConnector] | type[CoinbaseConnector]] = {
    "binance": BinanceConnector,
    "coinbase": CoinbaseConnector,
}


def kinesis_client(settings: ProducerSettings) -> KinesisClient:
    """A Kinesis client for the configured region; boto3 itself honours AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config

    # No client-side parameter validation: the publisher builds every request itself, Kinesis
    # validates them anyway, and walking 500 entries per PutRecords was a third of the
    # publisher's CPU (bench/RESULTS.md).
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=32,
        parameter_validation=False,
    )
    return boto3.client("kinesis", region_name=settings.aws_region, config=config)


def tune_process(settings: ProducerSettings) -> None:
    """Process-wide settings of a producer process (`python -m producer run | replay`).

    The GIL switch interval: the publisher's PutRecords run in threads, each a short burst of
    work between socket waits, beside an event loop busy with frames and records. At CPython's
    default of 5 ms a sender whose answer has arrived waits out the loop's slice before it may
    run; at 0.5 ms the publisher moved 15-20 % more records/s (bench/RESULTS.md)."""
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)


def publisher_for(
    settings: ProducerSettings, client: KinesisClient, counters: ProducerCounters
) -> KinesisPublisher:
    return KinesisPublisher(
        client,
        settings.stream_name,
        counters,
        max_records=settings.batch_max_records,
        max_bytes=settings.batch_max_bytes,
        linger_s=settings.linger_ms / 1000,
        max_in_flight=settings.publish_max_in_flight,
        retry_max_s=settings.publish_retry_max_s,
        backoff_max_s=settings.publish_backoff_max_s,
        spill=Spill(settings.spill_path),
    )


def check_stream(client: KinesisClient, stream_name: str) -> None:
    """Fail at start, with the stream's name, if it does not exist or cannot be read."""
    try:
        status = client.describe_stream_summary(StreamName=stream_name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise ConfigError(f"PRODUCER_STREAM_NAME: stream {stream_name!r}: {code}") from None
    except BotoCoreError as exc:
        raise ConfigError(f"cannot reach Kinesis for stream {stream_name!r}: {exc}") from None
    state = status["StreamDescriptionSummary"]["StreamStatus"]
    if state not in ("ACTIVE", "UPDATING"):
        raise ConfigError(f"PRODUCER_STREAM_NAME: stream {stream_name!r} is {state}")


class ProducerService:
    def __init__(
        self,
        settings: ProducerSettings,
        client: KinesisClient,
        counters: ProducerCounters | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.counters = counters or ProducerCounters()
        self.queue: asyncio.Queue[TradeEvent | None] = asyncio.Queue(settings.queue_max_events)
        self.publisher = publisher_for(settings, client, self.counters)
        self.connectors: list[BaseConnector] = [
            CONNECTOR_CLASSES[name](settings, self.counters.exchange(name))
            for name in settings.exchanges
        ]
        self.health = HealthServer(
            settings.health_host,
            settings.health_port,
            counters=self.counters.snapshot,
            connectors=lambda: [c.health_check() for c in self.connectors],
            publisher_error=lambda: self.publisher.last_error,
        )
        self.started = asyncio.Event()  # set once the health endpoint listens

    async def emit(self, event: TradeEvent) -> None:
        await self.queue.put(event)  # blocks when full: backpressure, never a drop
        self.counters.enqueued += 1

    def offer(self, event: TradeEvent) -> bool:
        """`emit` without a coroutine when the queue has room (what `Queue.put` does then, to
        the letter: it does not yield); False when full: the caller awaits `emit`."""
        queue = self.queue
        if queue.full():
            return False
        queue.put_nowait(event)
        self.counters.enqueued += 1
        return True

    async def run(self, stop: asyncio.Event) -> int:
        """Run until `stop` is set; returns the process exit code (0: everything accepted was
        published)."""
        await asyncio.to_thread(check_stream, self.client, self.settings.stream_name)
        await self.health.start()
        self.started.set()
        log.info("producer started", extra={"health_port": self.health.port})
        publisher = asyncio.create_task(self.publisher.run(self.queue), name="publisher")
        feeds = [
            asyncio.create_task(c.run(self.emit, self.offer), name=c.name) for c in self.connectors
        ]
        stopped = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait(
            [stopped, publisher, *feeds], return_when=asyncio.FIRST_COMPLETED
        )
        crashed = [t for t in done if t is not stopped and t.exception() is not None]
        for task in crashed:
            log.error("task failed", extra={"task": task.get_name()}, exc_info=task.exception())
        stopped.cancel()
        await self._stop(feeds, publisher)
        await self.health.stop()
        log.info("producer stopped", extra={"counters": self.counters.snapshot()})
        return 1 if crashed or self.counters.failed else 0

    async def _stop(self, feeds: list[asyncio.Task[None]], publisher: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout_s
        self.health.stopping = True
        log.info("stopping: intake closed, draining", extra={"queued": self.queue.qsize()})
        for connector in self.connectors:
            await connector.shutdown()
        await _settle(feeds, deadline - loop.time())
        if not publisher.done():
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self.queue.put(None)
                    await publisher
            except TimeoutError:
                log.error("shutdown deadline reached before the queue drained")
        await _settle([publisher], 0)
        leftover = self._drain_queue()
        if leftover:
            self.counters.failed += len(leftover)
            self.publisher.spill.write(leftover, "not published before the shutdown deadline")

    def _drain_queue(self) -> list[Record]:
        records = []
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if event is not None:
                records.append(to_record(event))
        return records


async def _settle(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Wait for tasks up to `timeout_s`, then cancel the rest and wait for them to unwind."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, pending_set = await asyncio.wait(pending, timeout=max(0.0, timeout_s))
        for task in pending_set:
            task.cancel()
        if pending_set:
            await asyncio.wait(pending_set)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed", extra={"task": task.get_name()}, exc_info=task.exception())
