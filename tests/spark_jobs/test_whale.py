"""MOD-002 on static DataFrames, with hand-computed expectations."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import SparkSession

from spark_jobs.common.detector import ModuleConfigError
from spark_jobs.detectors.whale import WhaleDetector
from tests.spark_jobs.builders import at, naive, trade, trades_df


def detector(**params: object) -> WhaleDetector:
    whale = WhaleDetector()
    whale.configure(params)
    return whale


def test_strictly_over_the_threshold_and_per_symbol_overrides(spark: SparkSession) -> None:
    rows = [
        trade(1, price=50_000.0, quantity=2.0, trade_id=1),  # exactly 100 000: not a whale
        trade(2, price=50_000.0, quantity=2.00002, trade_id=2),  # 100 001
        trade(3, price=3_000.0, quantity=20.0, symbol="ETH-USDT", trade_id=3),  # 60 000
        trade(4, price=3_000.0, quantity=200.0, symbol="ETH-USDT", trade_id=4),  # 600 000
        trade(5, price=60_000.0, quantity=20.0, exchange="coinbase", trade_id=5),  # 1.2 M
    ]
    whale = detector(per_symbol_threshold={"ETH-USDT": 50_000})
    found = {r["event_id"]: r.asDict() for r in whale.process(trades_df(spark, rows)).collect()}
    assert set(found) == {
        "binance:BTC-USDT:2",
        "binance:ETH-USDT:3",
        "binance:ETH-USDT:4",
        "coinbase:BTC-USDT:5",
    }
    assert found["binance:ETH-USDT:3"]["threshold"] == 50_000.0
    assert found["binance:BTC-USDT:2"]["threshold"] == 100_000.0
    assert [found[e]["size_tier"] for e in sorted(found)] == ["large", "large", "huge", "colossal"]
    five = found["coinbase:BTC-USDT:5"]
    assert (five["alert_id"], five["base_asset"], five["quote_asset"]) == (
        "whale:coinbase:BTC-USDT:5",
        "BTC",
        "USDT",
    )
    assert five["timestamp"] == naive(at(5))


def test_alerts_carry_the_dynamodb_shape(spark: SparkSession) -> None:
    whale = detector()
    records = whale.process(trades_df(spark, [trade(7, price=200_000.0, quantity=1.5, trade_id=9)]))
    (alert,) = [r.asDict() for r in whale.alerts(records).collect()]
    assert alert["alert_id"] == "whale:binance:BTC-USDT:9"
    assert alert["alert_type"] == "WHALE_TRADE"
    assert (alert["metric"], alert["threshold"]) == (300_000.0, 100_000.0)
    assert json.loads(alert["details"])["size_tier"] == "large"


def test_invalid_parameters_fail_naming_them() -> None:
    with pytest.raises(ModuleConfigError, match="per_symbol_threshold\\['BTC-USDT'\\]"):
        detector(per_symbol_threshold={"BTC-USDT": -5})
    with pytest.raises(ModuleConfigError, match="threshold_quote_volume must be > 0"):
        detector(threshold_quote_volume=0)
