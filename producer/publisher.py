"""The Kinesis publisher: batches from the queue, PutRecords, retries only the failed entries."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from producer.batching import Record, RecordBatcher
from producer.events import TradeEvent
from producer.kinesis_wire import wire_for
from producer.metrics import ProducerCounters

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

log = logging.getLogger(__name__)

# Whole-request errors worth retrying; anything else (no such stream, access denied) is permanent.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottlingException",
    }
)


class PartialFailureError(Exception):
    """Some entries of a PutRecords response failed; they are retried, the rest are done."""

    def __init__(self, records: list[Record], codes: dict[str, int]) -> None:
        super().__init__(f"{len(records)} entries failed: {codes}")
        self.records = records


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, PartialFailureError):
        return True
    if isinstance(exc, ClientError):
        # Any 5xx is the service's fault, whatever its code (botocore's own retries, which the
        # lean PutRecords path does not go through, retried them too).
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return code in RETRYABLE_ERROR_CODES or status >= 500
    return isinstance(exc, BotoCoreError)  # connection errors, read timeouts


class Spill:
    """Where records go when Kinesis will not take them: a JSON-lines file `replay` can resend."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def write(self, records: list[Record], reason: str) -> None:
        if self.path is None:
            for record in records:  # no file configured: the log is the record of last resort
                log.error(
                    "record not delivered",
                    extra={"reason": reason, "record": record.data.decode("utf-8", "replace")},
                )
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            for record in records:
                out.write(record.data + b"\n")
        log.error(
            "records spilled",
            extra={"count": len(records), "reason": reason, "path": str(self.path)},
        )


def to_record(event: TradeEvent) -> Record:
    """A trade as a Kinesis record: the JSON event, partitioned by symbol."""
    return Record(event.to_json(), event.symbol)


class KinesisPublisher:
    """Reads events from the queue until it reads `None`, publishing in PutRecords batches of at
    most `max_records` records and `max_bytes` bytes, each sent when full or `linger_s` after its
    first record. Up to `max_in_flight` requests run at once.

    PutRecords goes through `kinesis_wire` (same endpoint, region and credentials as `client`):
    botocore's generic serializer and parser were over half of a call's CPU."""

    def __init__(
        self,
        client: KinesisClient,
        stream_name: str,
        counters: ProducerCounters,
        *,
        max_records: int = 500,
        max_bytes: int = 5 * 1024 * 1024,
        linger_s: float = 0.1,
        max_in_flight: int = 4,
        retry_max_s: float = 120.0,
        backoff_max_s: float = 5.0,
        backoff_initial_s: float = 0.05,
        spill: Spill | None = None,
    ) -> None:
        self.client = client
        self._wire = wire_for(client)
        self.stream_name = stream_name
        self.counters = counters
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self.retry_max_s = retry_max_s
        self.backoff_max_s = backoff_max_s
        self.backoff_initial_s = backoff_initial_s
        self.spill = spill or Spill(None)
        self._slots = asyncio.Semaphore(max_in_flight)
        self.last_error: str | None = None

    async def run(self, queue: asyncio.Queue[TradeEvent | None]) -> None:
        """Publish until the `None` sentinel, then flush and wait for every request in flight."""
        loop = asyncio.get_running_loop()
        batcher = RecordBatcher(self.max_records, self.max_bytes)
        held: Record | None = None  # the record that did not fit in the previous batch
        done = False
        async with asyncio.TaskGroup() as requests:
            while not done:
                if held is None:
                    event = await queue.get()
                    if event is None:
                        break
                    held = to_record(event)
                batcher.add(held)
                held = None
                deadline = loop.time() + self.linger_s
                while not batcher.full:
                    try:
                        event = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        try:
                            async with asyncio.timeout(remaining):
                                event = await queue.get()
                        except TimeoutError:
                            break
                    if event is None:
                        done = True
                        break
                    record = to_record(event)
                    if not batcher.try_add(record):
                        held = record
                        break
                self.counters.queue_depth = queue.qsize()
                await self._slots.acquire()
                requests.create_task(self._send(batcher.take()))
            if held is not None:
                batcher.add(held)
            if len(batcher):
                await self._slots.acquire()
                requests.create_task(self._send(batcher.take()))

    async def publish(self, events: list[TradeEvent]) -> None:
        """Publish a finite list of events (replay, tests), returning when all are settled."""
        queue: asyncio.Queue[TradeEvent | None] = asyncio.Queue()
        for event in events:
            queue.put_nowait(event)
        queue.put_nowait(None)
        await self.run(queue)

    async def _send(self, records: list[Record]) -> None:
        try:
            await self.put_with_retries(records)
        finally:
            self._slots.release()

    async def put_with_retries(self, records: list[Record]) -> None:
        """PutRecords; resend only the entries reported failed, with capped jittered backoff, for
        up to `retry_max_s`. What still fails then is counted, spilled and logged."""
        pending = records
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=wait_random_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
            stop=stop_after_delay(self.retry_max_s),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        pending = await self._put_once(pending)
                    except PartialFailureError as partial:
                        pending = partial.records
                        raise
        except asyncio.CancelledError:
            self._give_up(pending, "cancelled at shutdown deadline")
            raise
        except Exception as exc:
            self._give_up(pending, f"{type(exc).__name__}: {exc}")

    async def _put_once(self, records: list[Record]) -> list[Record]:
        self.counters.put_records_calls += 1
        response: dict[str, Any] = await asyncio.to_thread(
            self._wire.put_records, self.stream_name, records
        )
        failed_count = int(response.get("FailedRecordCount", 0))
        if failed_count == 0:
            self.counters.published += len(records)
            self.last_error = None
            return []
        failed: list[Record] = []
        codes: dict[str, int] = {}
        for record, result in zip(records, response["Records"], strict=True):
            code = result.get("ErrorCode")
            if code:
                failed.append(record)
                codes[code] = codes.get(code, 0) + 1
        self.counters.published += len(records) - len(failed)
        self.counters.retried_entries += len(failed)
        self.last_error = f"{len(failed)} entries failed: {codes}"
        log.warning("PutRecords partial failure", extra={"failed": len(failed), "codes": codes})
        raise PartialFailureError(failed, codes)

    def _give_up(self, records: list[Record], reason: str) -> None:
        if not records:
            return
        self.counters.failed += len(records)
        self.last_error = reason
        self.spill.write(records, reason)
