"""MOD-003 on static DataFrames, with hand-computed expectations."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from spark_jobs.detectors.spread import SpreadDetector
from tests.spark_jobs.builders import at, naive, trade, trades_df


def detector() -> SpreadDetector:
    spread = SpreadDetector()
    spread.configure({})
    return spread


def test_vwap_spread_per_30s_window_with_high_and_low_exchange(spark: SparkSession) -> None:
    rows = [
        # window [0, 30): binance VWAP = (100*1 + 102*3) / 4 = 101.5; coinbase = 100.0
        trade(1, price=100.0, quantity=1.0),
        trade(29.999, price=102.0, quantity=3.0),
        trade(5, price=100.0, quantity=2.0, exchange="coinbase"),
        # window [30, 60): binance only -> no spread row
        trade(31, price=100.0, quantity=1.0),
        # window [60, 90): 100.0 vs 100.5 -> 0.5 % exactly: a row, not an alert
        trade(61, price=100.0, quantity=1.0),
        trade(62, price=100.5, quantity=1.0, exchange="coinbase"),
    ]
    spread = detector()
    records = spread.process(trades_df(spark, rows))
    got = {r["window_start"]: r.asDict() for r in records.collect()}
    assert set(got) == {naive(at(0)), naive(at(60))}
    first = got[naive(at(0))]
    assert first["window_end"] == naive(at(30))
    assert (first["exchange_count"], first["high_exchange"], first["low_exchange"]) == (
        2,
        "binance",
        "coinbase",
    )
    assert (first["max_vwap"], first["min_vwap"]) == (101.5, 100.0)
    assert first["spread_pct"] == pytest.approx(1.5)
    assert first["is_alert"] is True
    boundary = got[naive(at(60))]
    assert boundary["spread_pct"] == pytest.approx(0.5)
    assert boundary["is_alert"] is False
    (alert,) = [a.asDict() for a in spread.alerts(records).collect()]
    assert alert["alert_id"] == "spread:BTC-USDT:2026-01-01T00:00:00Z"
    assert alert["alert_type"] == "WIDE_SPREAD"
    assert alert["exchange"] is None
    assert alert["metric"] == pytest.approx(1.5)
