"""Builders of tiny in-memory DataFrames for Spark unit tests, with sensible defaults, and a
reader of what the tests sent to the local CloudWatch."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.common import schemas

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)


def at(seconds: float) -> datetime:
    """T0 (an epoch-aligned minute) plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def naive(moment: datetime) -> datetime:
    """How Spark hands a UTC timestamp back to Python (naive, in the session zone UTC)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def trade(
    seconds: float = 0.0,
    *,
    price: float = 100.0,
    quantity: float = 1.0,
    symbol: str = "BTC-USDT",
    exchange: str = "binance",
    side: str = "buy",
    trade_id: int | None = None,
    quote_volume: float | None = None,
) -> dict[str, Any]:
    trade_id = trade_id if trade_id is not None else next(_ids)
    return {
        "event_id": f"{exchange}:{symbol}:{trade_id}",
        "exchange": exchange,
        "symbol": symbol,
        "price": price,
        "quantity": quantity,
        "quote_volume": price * quantity if quote_volume is None else quote_volume,
        "side": side,
        "timestamp": at(seconds),
        "ingestion_timestamp": at(seconds + 0.05),
    }


def trades_df(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    names = [f.name for f in schemas.UNIFIED_TRADE.fields]
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], schemas.UNIFIED_TRADE)


def metric_sum(
    cloudwatch: Any,
    namespace: str,
    name: str,
    dims: list[Any],
    around: datetime | None = None,
    within: timedelta = timedelta(hours=1),
) -> float | None:
    """The sum of a CloudWatch metric's data points within `within` of `around` (default: now);
    None when it has none."""
    center = around or datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dims,
        StartTime=center - within,
        EndTime=center + within,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points) if points else None
