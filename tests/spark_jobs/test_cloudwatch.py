"""CloudWatch: quality and streaming metrics, built purely and sent to the local endpoint."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.common.cloudwatch import (
    QualityMetricsPublisher,
    StreamingMetricsListener,
    quality_metric_data,
    streaming_metric_data,
)
from spark_jobs.common.quality import QualityMetrics
from spark_jobs.common.settings import JobSettings
from tests.spark_jobs.builders import metric_sum

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
METRICS = QualityMetrics.from_counts(processed=40, passed=30, late=4, failures_by_check={})
PROGRESS: dict[str, Any] = {
    "id": "8c7a",
    "runId": "f00d",
    "name": "whale_detector-quality",
    "timestamp": "2026-01-01T00:05:00.000Z",
    "batchId": 3,
    "batchDuration": 1234,
    "numInputRows": 500,
    "inputRowsPerSecond": 100.0,
    "processedRowsPerSecond": 405.2,
    "durationMs": {"triggerExecution": 1234},
    "eventTime": {"watermark": "2026-01-01T00:02:30.000Z"},
}


def values(data: list[Any]) -> dict[str, tuple[float, str]]:
    return {d["MetricName"]: (d["Value"], d["Unit"]) for d in data}


def disabled(job_settings: JobSettings) -> JobSettings:
    metrics = job_settings.metrics.model_copy(update={"cloudwatch": False})
    return job_settings.model_copy(update={"metrics": metrics})


def test_quality_data_have_the_specs_names_units_and_job_dimension() -> None:
    data = quality_metric_data(METRICS, "whale_detector", NOW)

    assert values(data) == {
        "RecordsProcessed": (40.0, "Count"),
        "RecordsPassed": (30.0, "Count"),
        "RecordsFailed": (10.0, "Count"),
        "RecordsLate": (4.0, "Count"),
        "QualityScore": (75.0, "Percent"),
    }
    assert all(d["Dimensions"] == [{"Name": "Job", "Value": "whale_detector"}] for d in data)
    assert all(d["Timestamp"] == NOW for d in data)


def test_an_empty_batch_sends_counts_but_no_quality_score() -> None:
    empty = QualityMetrics.from_counts(0, 0, 0, {})

    assert set(values(quality_metric_data(empty, "j", NOW))) == {
        "RecordsProcessed",
        "RecordsPassed",
        "RecordsFailed",
        "RecordsLate",
    }


def test_streaming_data_from_a_progress() -> None:
    data = streaming_metric_data(PROGRESS, "whale_detector")

    assert values(data) == {
        "BatchDuration": (1234.0, "Milliseconds"),
        "InputRows": (500.0, "Count"),
        "InputRowsPerSecond": (100.0, "Count/Second"),
        "ProcessedRowsPerSecond": (405.2, "Count/Second"),
        "WatermarkLag": (150.0, "Seconds"),
    }
    assert data[0]["Dimensions"] == [
        {"Name": "Job", "Value": "whale_detector"},
        {"Name": "Query", "Value": "whale_detector-quality"},
    ]
    assert data[0]["Timestamp"] == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def test_streaming_data_leave_out_what_spark_has_not_measured() -> None:
    idle = {
        **PROGRESS,
        "name": None,
        "batchDuration": None,
        "inputRowsPerSecond": float("nan"),
        "processedRowsPerSecond": "NaN",
        "eventTime": {"watermark": "1970-01-01T00:00:00.000Z"},  # no watermark yet
    }

    data = streaming_metric_data(idle, "j")

    assert values(data) == {
        "BatchDuration": (1234.0, "Milliseconds"),
        "InputRows": (500.0, "Count"),
    }
    assert data[0]["Dimensions"][1] == {"Name": "Query", "Value": "unnamed"}


def statistic(cloudwatch: Any, namespace: str, name: str, dims: list[Any]) -> float | None:
    return metric_sum(cloudwatch, namespace, name, dims, around=NOW, within=timedelta(minutes=5))


def test_quality_metrics_reach_the_local_endpoint(
    job_settings: JobSettings, aws_env: dict[str, str]
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=aws_env["AWS_REGION"])
    job = f"job-{uuid.uuid4().hex[:8]}"
    publisher = QualityMetricsPublisher(cloudwatch, job_settings, job)

    sent = publisher.publish(METRICS, now=NOW)

    assert sent == 5
    dims: list[Any] = [{"Name": "Job", "Value": job}]
    listed = cloudwatch.list_metrics(Namespace="CryptoPulse/Quality", Dimensions=dims)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == [
        "QualityScore",
        "RecordsFailed",
        "RecordsLate",
        "RecordsPassed",
        "RecordsProcessed",
    ]
    got = {
        name: statistic(cloudwatch, "CryptoPulse/Quality", name, dims)
        for name in ("RecordsProcessed", "RecordsPassed", "RecordsFailed", "RecordsLate")
    }
    assert got == {
        "RecordsProcessed": 40.0,
        "RecordsPassed": 30.0,
        "RecordsFailed": 10.0,
        "RecordsLate": 4.0,
    }
    assert statistic(cloudwatch, "CryptoPulse/Quality", "QualityScore", dims) == 75.0


def test_disabled_metrics_send_nothing_and_need_no_client(job_settings: JobSettings) -> None:
    publisher = QualityMetricsPublisher(None, disabled(job_settings), "j")
    listener = StreamingMetricsListener(None, disabled(job_settings), "j")

    assert publisher.publish(METRICS) == 0
    assert listener.publish(PROGRESS) == 0


def test_enabled_metrics_need_a_client(job_settings: JobSettings) -> None:
    with pytest.raises(ValueError, match="CloudWatch client"):
        QualityMetricsPublisher(None, job_settings, "j")


def test_a_cloudwatch_failure_is_logged_not_raised(
    job_settings: JobSettings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = boto3.client(
        "cloudwatch",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    publisher = QualityMetricsPublisher(unreachable, job_settings, "j")

    with caplog.at_level(logging.WARNING, logger="spark_jobs.common.cloudwatch"):
        assert publisher.publish(METRICS, now=NOW) == 0

    assert "not sent" in caplog.text


def test_the_listener_sends_each_progress_of_a_real_query(
    spark: SparkSession, job_settings: JobSettings, aws_env: dict[str, str], tmp_path: Path
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=aws_env["AWS_REGION"])
    job = f"job-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "in"
    source.mkdir()
    (source / "0.jsonl").write_text(
        "\n".join(json.dumps({"t": f"2026-01-01T00:00:0{i}Z"}) for i in range(5)) + "\n"
    )
    stream = (
        spark.readStream.format("text")
        .load(str(source))
        .select(F.get_json_object("value", "$.t").cast("timestamp").alias("t"))
        .withWatermark("t", "1 minute")
    )
    listener = StreamingMetricsListener(cloudwatch, job_settings, job)
    spark.streams.addListener(listener)
    try:
        query = (
            stream.writeStream.queryName(f"{job}-quality")
            .format("noop")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(120)
        # Listener events arrive on Spark's listener bus, after the query's own progress.
        deadline = time.monotonic() + 30
        while listener.sent == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        spark.streams.removeListener(listener)

    assert listener.sent > 0
    dims: list[Any] = [{"Name": "Job", "Value": job}, {"Name": "Query", "Value": f"{job}-quality"}]
    listed = cloudwatch.list_metrics(Namespace="CryptoPulse/Streaming", Dimensions=dims)
    names = {m["MetricName"] for m in listed["Metrics"]}
    assert {"BatchDuration", "InputRows"} <= names
    assert metric_sum(cloudwatch, "CryptoPulse/Streaming", "InputRows", dims) == 5.0


def test_rows_dropped_by_the_watermark_are_reported_as_late() -> None:
    progress = {
        **PROGRESS,
        "stateOperators": [
            {"operatorName": "transformWithStateInPandasExec", "numRowsDroppedByWatermark": 3},
            {"operatorName": "stateStoreSave", "numRowsDroppedByWatermark": 2},
        ],
    }

    assert values(streaming_metric_data(progress, "volume_anomaly"))["LateRowsDropped"] == (
        5.0,
        "Count",
    )
