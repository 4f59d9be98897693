"""Counters of what the producer did, read by the health endpoint and the shutdown summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from producer.events import TradeEvent


@dataclass
class ExchangeCounters:
    received: int = 0  # live trade frames normalized
    duplicates: int = 0  # live trades already published (e.g. a last_match seen before)
    backfilled: int = 0  # trades recovered from REST and published
    backfill_overlap: int = 0  # REST trades that were already published (page overlap)
    gaps_detected: int = 0  # trade-id gaps seen (each may span many ids)
    gap_ids_unrecoverable: int = 0  # ids the exchange's REST no longer serves
    reconnects: int = 0
    rotations: int = 0  # planned reconnects before the exchange's connection limit
    stale_reconnects: int = 0  # connected but silent past the watchdog limit
    rest_requests: int = 0
    rest_rate_limited: int = 0  # 429/418 answers honoured with Retry-After
    rejected: Counter[str] = field(default_factory=Counter)  # malformed frames by reason
    skipped: Counter[str] = field(default_factory=Counter)  # well-formed, not published
    connected: bool = False
    # The latest live trade; its lag is worked out when read, not for every trade.
    last_trade: TradeEvent | None = field(default=None, repr=False)

    @property
    def last_trade_lag_ms(self) -> float | None:
        """Ingestion time - trade time of the latest live trade."""
        return None if self.last_trade is None else trade_lag_ms(self.last_trade)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        special = ("rejected", "skipped", "connected", "last_trade")
        return {
            **{k: v for k, v in vars(self).items() if k not in special},
            "last_trade_lag_ms": self.last_trade_lag_ms,
            "connected": self.connected,
            "rejected": dict(self.rejected),
            "skipped": dict(self.skipped),
        }


def trade_lag_ms(trade: TradeEvent) -> float | None:
    """Milliseconds between the exchange's trade time and the producer's ingestion time."""
    try:
        traded = datetime.fromisoformat(trade.timestamp)
        ingested = datetime.fromisoformat(trade.ingestion_timestamp)
    except ValueError:
        return None
    return (ingested - traded).total_seconds() * 1000


@dataclass
class ProducerCounters:
    exchanges: dict[str, ExchangeCounters] = field(default_factory=dict)
    enqueued: int = 0  # accepted into the publish queue
    published: int = 0  # acknowledged by Kinesis
    failed: int = 0  # given up after the retry budget (spilled and logged, never silent)
    retried_entries: int = 0  # entries a PutRecords response reported failed, then resent
    put_records_calls: int = 0
    queue_depth: int = 0

    def exchange(self, name: str) -> ExchangeCounters:
        return self.exchanges.setdefault(name, ExchangeCounters())

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view; totals first, then per exchange."""
        per_exchange = {name: c.as_dict() for name, c in self.exchanges.items()}
        total = {
            key: sum(int(getattr(c, key)) for c in self.exchanges.values())
            for key in ("received", "duplicates", "backfilled", "gaps_detected", "reconnects")
        }
        return {
            **total,
            "rejected": sum(sum(c.rejected.values()) for c in self.exchanges.values()),
            "enqueued": self.enqueued,
            "published": self.published,
            "failed": self.failed,
            "retried_entries": self.retried_entries,
            "put_records_calls": self.put_records_calls,
            "queue_depth": self.queue_depth,
            "exchanges": per_exchange,
        }
