"""The DynamoDB alert sink: pure item builders, then conditional puts on the local endpoint."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pyspark.sql import SparkSession

from devstack.provision import ensure_alerts_table
from spark_jobs.common import schemas
from spark_jobs.common.dynamodb import (
    SYMBOL_INDEX,
    TTL_ATTRIBUTE,
    AlertItemError,
    AlertSinkError,
    AlertThrottledError,
    PutResult,
    alert_item,
    alerts_table_definition,
    backoff_delay_s,
    iso_utc,
    put_alerts,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TTL_DAYS = 30


def alert(**overrides: Any) -> dict[str, Any]:
    """A `schemas.ALERT` row as a dict (a whale by default)."""
    row: dict[str, Any] = {
        "alert_id": "whale:binance:BTC-USDT:1001",
        "alert_type": "WHALE_TRADE",
        "symbol": "BTC-USDT",
        "exchange": "binance",
        "event_time": datetime(2026, 1, 1, 11, 59, 58, 123456, tzinfo=UTC),
        "detected_at": datetime(2026, 1, 1, 11, 59, 59, 5000, tzinfo=UTC),
        "metric": 250_000.5,
        "threshold": 100_000.0,
        "details": json.dumps({"size_tier": "whale"}),
    }
    row.update(overrides)
    return row


def test_an_alert_becomes_an_attribute_typed_item() -> None:
    item = alert_item(alert(), TTL_DAYS, NOW)

    assert item == {
        "alert_id": {"S": "whale:binance:BTC-USDT:1001"},
        "alert_type": {"S": "WHALE_TRADE"},
        "symbol": {"S": "BTC-USDT"},
        "exchange": {"S": "binance"},
        "event_time": {"S": "2026-01-01T11:59:58.123456Z"},
        "detected_at": {"S": "2026-01-01T11:59:59.005000Z"},
        "metric": {"N": "250000.5"},
        "threshold": {"N": "100000.0"},
        "details": {"S": '{"size_tier": "whale"}'},
        TTL_ATTRIBUTE: {"N": str(int((NOW + timedelta(days=30)).timestamp()))},
    }
    assert item[TTL_ATTRIBUTE] == {"N": "1769860800"}


def test_a_spread_alert_has_no_exchange_attribute() -> None:
    item = alert_item(alert(alert_type="WIDE_SPREAD", exchange=None), TTL_DAYS, NOW)

    assert "exchange" not in item


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00.123Z", "2026-01-01T00:00:00.123000Z"),
        ("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.000000Z"),
        (
            datetime(2026, 1, 1, 9, tzinfo=UTC) + timedelta(microseconds=7),
            "2026-01-01T09:00:00.000007Z",
        ),
    ],
)
def test_times_are_fixed_width_utc_text(value: Any, expected: str) -> None:
    assert iso_utc(value) == expected


def test_details_given_as_a_mapping_are_serialized() -> None:
    item = alert_item(alert(details={"z": 3.1}), TTL_DAYS, NOW)

    assert item["details"] == {"S": '{"z": 3.1}'}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric": float("nan")}, "finite"),
        ({"threshold": float("inf")}, "finite"),
        ({"metric": "big"}, "number"),
        ({"symbol": None}, "lacks \\['symbol'\\]"),
        ({"event_time": None, "details": None}, "lacks \\['event_time', 'details'\\]"),
    ],
)
def test_rows_that_cannot_be_items_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertItemError, match=message):
        alert_item(alert(**overrides), TTL_DAYS, NOW)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    assert [backoff_delay_s(n, 0.05, 1.0, lambda: 1.0) for n in range(6)] == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
    ]
    assert backoff_delay_s(3, 0.05, 1.0, lambda: 0.5) == 0.2
    assert backoff_delay_s(3, 0.05, 1.0, lambda: 0.0) == 0.0


def test_table_definition_has_the_key_gsi_and_on_demand_billing() -> None:
    definition = alerts_table_definition("alerts")

    assert definition["KeySchema"] == [{"AttributeName": "alert_id", "KeyType": "HASH"}]
    [gsi] = definition["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == SYMBOL_INDEX
    assert gsi["KeySchema"] == [
        {"AttributeName": "symbol", "KeyType": "HASH"},
        {"AttributeName": "event_time", "KeyType": "RANGE"},
    ]
    assert definition["BillingMode"] == "PAY_PER_REQUEST"


@pytest.fixture
def dynamodb(aws_env: dict[str, str]) -> Any:
    return boto3.client("dynamodb", region_name=aws_env["AWS_REGION"])


@pytest.fixture
def table(dynamodb: Any) -> str:
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    ensure_alerts_table(dynamodb, name)
    return name


def test_provisioning_is_idempotent_and_enables_ttl(dynamodb: Any, table: str) -> None:
    arn = ensure_alerts_table(dynamodb, table)  # a second time: no error

    described = dynamodb.describe_table(TableName=table)["Table"]
    assert described["TableArn"] == arn
    assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == [SYMBOL_INDEX]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", TTL_ATTRIBUTE)


def test_the_same_alert_written_twice_is_one_item_and_no_error(dynamodb: Any, table: str) -> None:
    item = alert_item(alert(), TTL_DAYS, NOW)
    later = alert_item(alert(metric=1.0), TTL_DAYS, NOW + timedelta(hours=1))  # a replay

    first = put_alerts(dynamodb, table, [item])
    second = put_alerts(dynamodb, table, [later, item])

    assert first == PutResult(written=1, duplicates=0)
    assert second == PutResult(written=0, duplicates=2)
    items = dynamodb.scan(TableName=table)["Items"]
    assert len(items) == 1
    assert items[0] == item  # the first write stands
    assert items[0][TTL_ATTRIBUTE] == {"N": "1769860800"}


def test_the_gsi_lists_a_symbols_latest_alerts_newest_first(dynamodb: Any, table: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    alerts = [
        alert(alert_id=f"whale:btc:{i}", event_time=start + timedelta(minutes=i)) for i in range(4)
    ] + [alert(alert_id="whale:eth:9", symbol="ETH-USDT", event_time=start + timedelta(hours=1))]
    # Detection order differs from market order: the index follows the market.
    alerts[0]["detected_at"] = start + timedelta(hours=2)
    put_alerts(dynamodb, table, [alert_item(a, TTL_DAYS, NOW) for a in alerts])

    page = dynamodb.query(
        TableName=table,
        IndexName=SYMBOL_INDEX,
        KeyConditionExpression="symbol = :symbol",
        ExpressionAttributeValues={":symbol": {"S": "BTC-USDT"}},
        ScanIndexForward=False,
        Limit=3,
    )

    assert [i["alert_id"]["S"] for i in page["Items"]] == [
        "whale:btc:3",
        "whale:btc:2",
        "whale:btc:1",
    ]


def test_alert_rows_collected_from_spark_are_written(
    spark: SparkSession, dynamodb: Any, table: str
) -> None:
    frame = spark.createDataFrame(
        [alert(alert_id="spread:BTC-USDT:x", exchange=None)], schemas.ALERT
    )
    rows = [row.asDict() for row in frame.collect()]

    result = put_alerts(dynamodb, table, [alert_item(r, TTL_DAYS, NOW) for r in rows])

    assert result.written == 1
    got = dynamodb.get_item(TableName=table, Key={"alert_id": {"S": "spread:BTC-USDT:x"}})["Item"]
    assert got["event_time"] == {"S": "2026-01-01T11:59:58.123456Z"}
    assert "exchange" not in got


def test_other_errors_are_raised_clearly(dynamodb: Any) -> None:
    missing = f"no-table-{uuid.uuid4().hex[:8]}"

    with pytest.raises(AlertSinkError, match="ResourceNotFoundException") as caught:
        put_alerts(dynamodb, missing, [alert_item(alert(), TTL_DAYS, NOW)])

    assert caught.value.alert_id == "whale:binance:BTC-USDT:1001"
    assert caught.value.code == "ResourceNotFoundException"


# moto never throttles: botocore's Stubber answers the calls instead (same client, same API
# model validation of the request).
@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"],
)
def test_throttling_is_retried_with_backoff(code: str) -> None:
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    item = alert_item(alert(), TTL_DAYS, NOW)
    expected = {
        "TableName": "alerts",
        "Item": item,
        "ConditionExpression": "attribute_not_exists(alert_id)",
    }
    sleeps: list[float] = []
    with Stubber(client) as stub:
        stub.add_client_error("put_item", code, expected_params=expected)
        stub.add_client_error("put_item", code, expected_params=expected)
        stub.add_response("put_item", {}, expected)

        result = put_alerts(client, "alerts", [item], sleep=sleeps.append, rand=lambda: 1.0)

        stub.assert_no_pending_responses()
    assert result == PutResult(written=1, duplicates=0, throttle_retries=2)
    assert sleeps == [0.05, 0.1]


def test_throttling_past_the_budget_raises() -> None:
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    sleeps: list[float] = []
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("put_item", "ThrottlingException")

        with pytest.raises(AlertThrottledError, match="after 3 attempts"):
            put_alerts(
                client,
                "alerts",
                [alert_item(alert(), TTL_DAYS, NOW)],
                max_attempts=3,
                sleep=sleeps.append,
                rand=lambda: 1.0,
            )

    assert sleeps == [0.05, 0.1]
