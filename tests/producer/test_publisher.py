"""The Kinesis publisher over real HTTP: batching limits, partial failures, throttling."""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devstack.kinesis_sink import KinesisSink, SinkState
from devstack.provision import read_stream
from producer.events import TradeEvent
from producer.metrics import ProducerCounters
from producer.publisher import KinesisPublisher, Spill


def trades(count: int, symbol: str = "BTC-USDT") -> list[TradeEvent]:
    return [
        TradeEvent(
            exchange="binance",
            symbol=symbol,
            trade_id=i,
            price=60000.0 + i,
            quantity=0.01,
            side="buy" if i % 2 else "sell",
            timestamp="2026-01-01T00:00:00.000Z",
            ingestion_timestamp="2026-01-01T00:00:00.001000Z",
        )
        for i in range(count)
    ]


def sink_client(sink: KinesisSink) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=sink.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def test_publishes_everything_to_the_stream_partitioned_by_symbol(
    kinesis: Any, stream_name: str
) -> None:
    counters = ProducerCounters()
    events = trades(1200) + trades(300, symbol="ETH-USDT")
    publisher = KinesisPublisher(kinesis, stream_name, counters, linger_s=0.01)
    asyncio.run(publisher.publish(events))
    records = read_stream(kinesis, stream_name)
    assert sorted(r["event_id"] for r in records) == sorted(e.event_id for e in events)
    assert records[0].keys() == {
        "event_id",
        "exchange",
        "symbol",
        "price",
        "quantity",
        "quote_volume",
        "side",
        "timestamp",
        "ingestion_timestamp",
    }
    assert counters.published == 1500
    assert counters.failed == 0
    assert counters.put_records_calls >= 3  # 500 records per call at most


def test_only_the_failed_entries_are_retried_and_none_is_lost() -> None:
    # Every 7th entry attempt fails, alternating between the two retryable error codes.
    codes = ["ProvisionedThroughputExceededException", "InternalFailure"]
    state = SinkState(fail_entry=lambda n, _: codes[n % 2] if n % 7 == 3 else None)
    counters = ProducerCounters()
    with KinesisSink(state) as sink:
        publisher = KinesisPublisher(
            sink_client(sink), "s", counters, linger_s=0.01, backoff_initial_s=0.001
        )
        asyncio.run(publisher.publish(trades(2000)))
    delivered = [json.loads(data)["event_id"] for _, data in state.records]
    assert collections.Counter(delivered) == collections.Counter(e.event_id for e in trades(2000))
    # Each attempt sent only what was pending: attempts = records + retried entries.
    assert state.entry_attempts == 2000 + counters.retried_entries
    assert counters.retried_entries == state.failed_entries > 250
    assert (counters.published, counters.failed) == (2000, 0)


def test_batches_respect_the_record_and_byte_limits() -> None:
    state = SinkState()
    sizes: list[int] = []

    class Recording(KinesisPublisher):
        async def _put_once(self, records: list[Any]) -> list[Any]:
            sizes.append(sum(r.size for r in records))
            assert len(records) <= 100
            return await super()._put_once(records)

    with KinesisSink(state) as sink:
        publisher = Recording(
            sink_client(sink),
            "s",
            ProducerCounters(),
            max_records=100,
            max_bytes=20_000,
            linger_s=0.01,
        )
        asyncio.run(publisher.publish(trades(1000)))
    assert len(state.records) == 1000
    assert max(sizes) <= 20_000
    assert len(sizes) >= 1000 * 230 // 20_000  # each record is ~230 bytes


def test_entries_that_never_succeed_are_spilled_counted_and_not_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every ETH-USDT entry fails, every time.
    state = SinkState(fail_entry=lambda _, data: "InternalFailure" if b"ETH-USDT" in data else None)
    counters = ProducerCounters()
    spill = tmp_path / "spill.jsonl"
    with KinesisSink(state) as sink:
        publisher = KinesisPublisher(
            sink_client(sink),
            "s",
            counters,
            linger_s=0.01,
            retry_max_s=0.5,
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            spill=Spill(str(spill)),
        )
        asyncio.run(publisher.publish(trades(50) + trades(5, symbol="ETH-USDT")))
    assert len(state.records) == 50
    assert (counters.published, counters.failed) == (50, 5)
    spilled = [json.loads(line)["event_id"] for line in spill.read_text().splitlines()]
    assert spilled == [f"binance:ETH-USDT:{i}" for i in range(5)]
    assert "records spilled" in caplog.text
    assert publisher.last_error is not None


def test_a_counting_sink_answers_every_entry_with_its_own_sequence_number() -> None:
    """The benchmark's sink keeps nothing (`store=False`): it still answers each entry."""
    state = SinkState(store=False)
    with KinesisSink(state) as sink:
        client = sink_client(sink)
        first = client.put_records(
            StreamName="s", Records=[{"Data": b"a", "PartitionKey": "k"}] * 3
        )
        second = client.put_records(StreamName="s", Records=[{"Data": b"b", "PartitionKey": "k"}])
    numbers = [r["SequenceNumber"] for r in first["Records"] + second["Records"]]
    assert (first["FailedRecordCount"], second["FailedRecordCount"]) == (0, 0)
    assert len(set(numbers)) == 4
    assert (state.records, state.entry_attempts, state.requests) == ([], 4, 2)
