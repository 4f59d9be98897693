"""The hot alert sink: one DynamoDB table of alerts, written exactly once (SPEC §6.4).

Table (`alerts_table_definition`), on-demand billing:
- key `alert_id` (S), deterministic and made by the detectors, e.g.
  `volume_anomaly:{exchange}:{symbol}:{window_start}`, `whale:{event_id}`,
  `spread:{symbol}:{window_start}`;
- GSI `SYMBOL_INDEX` = `symbol` (S) + `event_time` (S, ISO 8601 UTC, always 6 fraction digits so
  text order is time order), projecting everything: a symbol's latest alerts, newest first, with
  `ScanIndexForward=False`. Sorted by market time, not `detected_at`, so a job catching up after
  a restart does not make old events look newest;
- TTL attribute `expires_at` (N, epoch seconds) = time of writing + `alerts.ttl_days`.

Item (`alert_item`), a `schemas.ALERT` row: alert_id, alert_type, symbol, exchange (left out
when null: a spread spans exchanges), event_time, detected_at (ISO strings as above), metric,
threshold (N), details (S, a JSON string), expires_at (N).

Item building is pure (values in, attribute-typed dict out); `put_alerts` is the I/O: a
conditional put per item (`attribute_not_exists(alert_id)`), where "already there" counts as a
success, so a replayed micro-batch leaves each alert exactly once. This module imports no
pyspark, so provisioning can use the table definition.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, CreateTableInputTypeDef

KEY = "alert_id"
SYMBOL_INDEX = "symbol-event_time-index"
TTL_ATTRIBUTE = "expires_at"
CONDITION = f"attribute_not_exists({KEY})"
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_STRINGS = ("alert_id", "alert_type", "symbol")


class AlertSinkError(RuntimeError):
    """An alert could not be written to DynamoDB; the message names the alert and the error."""

    def __init__(self, message: str, alert_id: str | None = None, code: str | None = None):
        super().__init__(message)
        self.alert_id = alert_id
        self.code = code


class AlertThrottledError(AlertSinkError):
    """DynamoDB kept throttling past the retry budget."""


class AlertItemError(ValueError):
    """An alert row that cannot become an item (missing field, NaN metric …)."""


@dataclass(frozen=True)
class PutResult:
    written: int  # new items
    duplicates: int  # already there (a replayed batch): success, nothing written
    throttle_retries: int = 0  # puts retried after throttling

    @property
    def total(self) -> int:
        return self.written + self.duplicates


def iso_utc(value: datetime | str) -> str:
    """A time as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (sortable as text).

    A naive datetime is local time, as PySpark's `collect()` gives them (and UTC in a job, where
    the session and the process run in UTC); an ISO string is parsed first.
    """
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _number(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertItemError(f"alert field {name!r} must be a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise AlertItemError(f"alert field {name!r} must be finite, got {value!r}")
    return repr(float(value))


def alert_item(
    alert: Mapping[str, Any], ttl_days: int, now: datetime
) -> dict[str, AttributeValueTypeDef]:
    """A `schemas.ALERT` row (e.g. `Row.asDict()`) -> a DynamoDB item (attribute-typed)."""
    missing = [
        name
        for name in (*_STRINGS, "event_time", "detected_at", "metric", "threshold", "details")
        if alert.get(name) is None
    ]
    if missing:
        raise AlertItemError(f"alert {alert.get(KEY)!r} lacks {missing}")
    details = alert["details"]
    item: dict[str, AttributeValueTypeDef] = {name: {"S": str(alert[name])} for name in _STRINGS}
    if alert.get("exchange") is not None:
        item["exchange"] = {"S": str(alert["exchange"])}
    item["event_time"] = {"S": iso_utc(alert["event_time"])}
    item["detected_at"] = {"S": iso_utc(alert["detected_at"])}
    item["metric"] = {"N": _number("metric", alert["metric"])}
    item["threshold"] = {"N": _number("threshold", alert["threshold"])}
    item["details"] = {"S": details if isinstance(details, str) else json.dumps(details)}
    expires = now.astimezone(UTC) + timedelta(days=ttl_days)
    item[TTL_ATTRIBUTE] = {"N": str(int(expires.timestamp()))}
    return item


def alerts_table_definition(name: str) -> CreateTableInputTypeDef:
    """`create_table` arguments of the alerts table (TTL is enabled separately)."""
    return {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": KEY, "AttributeType": "S"},
            {"AttributeName": "symbol", "AttributeType": "S"},
            {"AttributeName": "event_time", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": SYMBOL_INDEX,
                "KeySchema": [
                    {"AttributeName": "symbol", "KeyType": "HASH"},
                    {"AttributeName": "event_time", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def backoff_delay_s(
    attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt))."""
    return float(min(cap_s, base_s * 2**attempt) * rand())


def put_alerts(
    client: DynamoDBClient,
    table: str,
    items: Iterable[Mapping[str, AttributeValueTypeDef]],
    *,
    max_attempts: int = 8,
    base_delay_s: float = 0.05,
    max_delay_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> PutResult:
    """Conditionally put each item; a duplicate is a success. Throttling is retried (capped,
    jittered backoff, `max_attempts` tries per item); any other error raises `AlertSinkError`."""
    written = duplicates = retries = 0
    for item in items:
        alert_id = item.get(KEY, {}).get("S")
        for attempt in range(max_attempts):
            try:
                client.put_item(TableName=table, Item=item, ConditionExpression=CONDITION)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ConditionalCheckFailedException":
                    duplicates += 1
                    break
                if code in THROTTLING_CODES:
                    if attempt + 1 == max_attempts:
                        raise AlertThrottledError(
                            f"alert {alert_id} to {table}: still throttled after "
                            f"{max_attempts} attempts",
                            alert_id,
                            code,
                        ) from exc
                    retries += 1
                    sleep(backoff_delay_s(attempt, base_delay_s, max_delay_s, rand))
                    continue
                raise AlertSinkError(
                    f"alert {alert_id} to {table} failed: {code}: {exc}", alert_id, code
                ) from exc
            except BotoCoreError as exc:
                raise AlertSinkError(
                    f"alert {alert_id} to {table} failed: {exc}", alert_id
                ) from exc
            else:
                written += 1
                break
    return PutResult(written, duplicates, retries)
