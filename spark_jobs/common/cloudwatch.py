"""CloudWatch metrics: data quality per micro-batch, streaming progress per trigger (SPEC §6.2,
§6.4).

- Quality, namespace `settings.metrics.quality_namespace` (`CryptoPulse/Quality`), dimension
  `Job`: RecordsProcessed, RecordsPassed, RecordsFailed, RecordsLate (Count), QualityScore
  (Percent; left out for an empty batch, which would otherwise read as a perfect one).
- Streaming, namespace `settings.metrics.streaming_namespace` (`CryptoPulse/Streaming`),
  dimensions `Job` and `Query` (the query name: a job runs a quality and a detect query):
  BatchDuration (Milliseconds), InputRows (Count), InputRowsPerSecond and ProcessedRowsPerSecond
  (Count/Second), WatermarkLag (Seconds: trigger time − watermark, once there is a watermark).

The data are built by pure functions from values (`quality_metric_data`, `streaming_metric_data`
on a progress dict such as `StreamingQuery.lastProgress`); the publisher and the listener only
send them. Metrics are best effort: a CloudWatch failure is logged, never fails a batch. Nothing
is sent when `settings.metrics.cloudwatch` is false. The client is injected.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pyspark.sql.streaming.listener import StreamingQueryListener

from spark_jobs.common.quality import QualityMetrics
from spark_jobs.common.settings import JobSettings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.literals import StandardUnitType
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDatumTypeDef
    from pyspark.sql.streaming.listener import (
        QueryIdleEvent,
        QueryProgressEvent,
        QueryStartedEvent,
        QueryTerminatedEvent,
    )

log = logging.getLogger(__name__)

# PutMetricData takes up to 1000 data per call; stay far below it.
MAX_DATA_PER_CALL = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datum(
    name: str,
    value: float,
    unit: StandardUnitType,
    dimensions: Sequence[DimensionTypeDef],
    timestamp: datetime,
) -> MetricDatumTypeDef:
    return {
        "MetricName": name,
        "Dimensions": list(dimensions),
        "Timestamp": timestamp,
        "Value": float(value),
        "Unit": unit,
    }


def quality_metric_data(
    metrics: QualityMetrics, job: str, timestamp: datetime
) -> list[MetricDatumTypeDef]:
    """One batch's quality numbers as CloudWatch data, dimension `Job=<job>`."""
    dims: list[DimensionTypeDef] = [{"Name": "Job", "Value": job}]
    data = [
        _datum("RecordsProcessed", metrics.records_processed, "Count", dims, timestamp),
        _datum("RecordsPassed", metrics.records_passed, "Count", dims, timestamp),
        _datum("RecordsFailed", metrics.records_failed, "Count", dims, timestamp),
        _datum("RecordsLate", metrics.records_late, "Count", dims, timestamp),
    ]
    if metrics.records_processed:
        data.append(_datum("QualityScore", metrics.quality_score_pct, "Percent", dims, timestamp))
    return data


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def streaming_metric_data(progress: Mapping[str, Any], job: str) -> list[MetricDatumTypeDef]:
    """A `StreamingQueryProgress` as a dict (its JSON) -> CloudWatch data, dimensions Job, Query.

    Missing or non-finite values (Spark reports NaN rates on an idle trigger) are left out.
    """
    timestamp = _parse_time(progress.get("timestamp")) or datetime.now(UTC)
    dims: list[DimensionTypeDef] = [
        {"Name": "Job", "Value": job},
        {"Name": "Query", "Value": str(progress.get("name") or "unnamed")},
    ]
    duration = _finite(progress.get("batchDuration"))
    if duration is None:
        duration = _finite((progress.get("durationMs") or {}).get("triggerExecution"))
    candidates: list[tuple[str, float | None, StandardUnitType]] = [
        ("BatchDuration", duration, "Milliseconds"),
        ("InputRows", _finite(progress.get("numInputRows")), "Count"),
        ("InputRowsPerSecond", _finite(progress.get("inputRowsPerSecond")), "Count/Second"),
        ("ProcessedRowsPerSecond", _finite(progress.get("processedRowsPerSecond")), "Count/Second"),
    ]
    operators = progress.get("stateOperators") or []
    if operators:  # rows older than the watermark, dropped by stateful operators: late data
        late = sum(int(op.get("numRowsDroppedByWatermark") or 0) for op in operators)
        candidates.append(("LateRowsDropped", float(late), "Count"))
    watermark = _parse_time((progress.get("eventTime") or {}).get("watermark"))
    if watermark is not None and watermark > _EPOCH:  # epoch 0 = no watermark yet
        candidates.append(("WatermarkLag", (timestamp - watermark).total_seconds(), "Seconds"))
    return [
        _datum(name, value, unit, dims, timestamp)
        for name, value, unit in candidates
        if value is not None
    ]


def put_metric_data(
    client: CloudWatchClient, namespace: str, data: Sequence[MetricDatumTypeDef]
) -> int:
    """Send the data in as many calls as needed; returns how many were sent. Raises boto errors."""
    for start in range(0, len(data), MAX_DATA_PER_CALL):
        client.put_metric_data(
            Namespace=namespace, MetricData=list(data[start : start + MAX_DATA_PER_CALL])
        )
    return len(data)


def _send(client: CloudWatchClient, namespace: str, data: Sequence[MetricDatumTypeDef]) -> int:
    try:
        return put_metric_data(client, namespace, data)
    except (ClientError, BotoCoreError) as exc:
        log.warning("CloudWatch metrics to %s not sent: %s", namespace, exc)
        return 0


class QualityMetricsPublisher:
    """Publishes each batch's `QualityMetrics` (a no-op when `metrics.cloudwatch` is false)."""

    def __init__(
        self,
        client: CloudWatchClient | None,
        settings: JobSettings,
        job: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.enabled = settings.metrics.cloudwatch
        if self.enabled and client is None:
            raise ValueError("metrics.cloudwatch is on: a CloudWatch client is needed")
        self.client = client
        self.namespace = settings.metrics.quality_namespace
        self.job = job
        self.clock = clock

    def publish(self, metrics: QualityMetrics, now: datetime | None = None) -> int:
        """Returns the number of data sent (0 when disabled or CloudWatch failed)."""
        if not self.enabled or self.client is None:
            return 0
        data = quality_metric_data(metrics, self.job, now or self.clock())
        return _send(self.client, self.namespace, data)


class StreamingMetricsListener(StreamingQueryListener):
    """Sends every query progress of the session to CloudWatch: `spark.streams.addListener(...)`.

    Spark calls it on the driver, off the query's thread; it never raises into Spark.
    """

    def __init__(self, client: CloudWatchClient | None, settings: JobSettings, job: str) -> None:
        self.enabled = settings.metrics.cloudwatch
        if self.enabled and client is None:
            raise ValueError("metrics.cloudwatch is on: a CloudWatch client is needed")
        self.client = client
        self.namespace = settings.metrics.streaming_namespace
        self.job = job
        self.sent = 0  # data sent so far (for tests and logs)

    def publish(self, progress: Mapping[str, Any]) -> int:
        """Send one progress (also usable per batch with `query.lastProgress`)."""
        if not self.enabled or self.client is None:
            return 0
        count = _send(self.client, self.namespace, streaming_metric_data(progress, self.job))
        self.sent += count
        return count

    def onQueryStarted(self, event: QueryStartedEvent) -> None:  # noqa: N802 - Spark's name
        pass

    def onQueryProgress(self, event: QueryProgressEvent) -> None:  # noqa: N802 - Spark's name
        try:
            self.publish(json.loads(event.progress.json))
        except Exception:  # a listener must not break the session's listener bus
            log.exception("streaming metrics not sent")

    def onQueryIdle(self, event: QueryIdleEvent) -> None:  # noqa: N802 - Spark's name
        pass

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:  # noqa: N802 - Spark's name
        pass
