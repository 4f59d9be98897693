"""DlqWriter: JSON lines under {raw_zone}/dlq/{reason}/dt=YYYY-MM-DD/, once per batch."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyspark.sql import SparkSession

from spark_jobs.common import schemas
from spark_jobs.common.dlq import DlqError, DlqWriter, dlq_file_key, dlq_files
from spark_jobs.common.quality import DataQualityChecker
from spark_jobs.common.settings import JobSettings
from spark_jobs.common.trades import parse_trades

JOB = "whale_detector"
DAY_1 = datetime(2026, 1, 1, 23, 59, tzinfo=UTC)
DAY_2 = datetime(2026, 1, 2, 0, 1, tzinfo=UTC)
GOOD = {
    "event_id": "binance:BTC-USDT:1",
    "exchange": "binance",
    "symbol": "BTC-USDT",
    "price": 100.0,
    "quantity": 1.0,
    "quote_volume": 100.0,
    "side": "buy",
    "timestamp": "2026-01-01T23:58:00.000Z",
    "ingestion_timestamp": "2026-01-01T23:58:00.001Z",
}
BAD_PRICE = {**GOOD, "event_id": "binance:BTC-USDT:2", "price": -1.0}
UNKNOWN_SYMBOL = {**GOOD, "event_id": "binance:DOGE-USDT:3", "symbol": "DOGE-USDT"}
MALFORMED = '{"event_id": "binance:BTC-USDT:4", "price": '


def dlq_row(reason: str, raw: str, event_id: str | None = None) -> dict[str, Any]:
    """A row as quality.validate's invalid DataFrame gives it."""
    return {"raw": raw, "event_id": event_id, "failed_checks": [reason], "reason": reason}


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def local_settings(job_settings: JobSettings, root: Path) -> JobSettings:
    return job_settings.model_copy(update={"raw_zone": str(root)})


def test_file_keys_are_deterministic_per_reason_day_job_and_batch() -> None:
    assert (
        dlq_file_key("parse_json", date(2026, 1, 1), JOB, 42)
        == "parse_json/dt=2026-01-01/whale_detector-0000000042.jsonl"
    )
    assert (
        dlq_file_key("a/b", date(2026, 1, 1), "../x", 1)
        == "a_b/dt=2026-01-01/.._x-0000000001.jsonl"
    )


def test_lines_carry_the_dlq_record_and_are_sorted() -> None:
    rows = [dlq_row("parse_json", "zzz"), dlq_row("parse_json", "aaa", "e-1")]

    files = dlq_files(rows, JOB, 5, date(2026, 1, 1))

    assert list(files) == ["parse_json/dt=2026-01-01/whale_detector-0000000005.jsonl"]
    lines = [json.loads(line) for line in files[next(iter(files))].decode().splitlines()]
    assert lines == [
        {
            "raw": "aaa",
            "event_id": "e-1",
            "failed_checks": ["parse_json"],
            "reason": "parse_json",
            "job": JOB,
            "batch_id": 5,
        },
        {
            "raw": "zzz",
            "event_id": None,
            "failed_checks": ["parse_json"],
            "reason": "parse_json",
            "job": JOB,
            "batch_id": 5,
        },
    ]
    assert list(lines[0]) == [field.name for field in schemas.DLQ_RECORD.fields]


def test_a_validated_batch_lands_under_reason_and_processing_date(
    spark: SparkSession, job_settings: JobSettings, tmp_path: Path
) -> None:
    events = [json.dumps(GOOD), json.dumps(BAD_PRICE), json.dumps(UNKNOWN_SYMBOL), MALFORMED]
    records = spark.createDataFrame(
        [(text.encode(), "s", "k", str(i), DAY_1) for i, text in enumerate(events)],
        schemas.RAW_KINESIS_RECORD,
    )
    settings = local_settings(job_settings, tmp_path / "raw")
    _, invalid, metrics = DataQualityChecker(settings, JOB).validate(
        parse_trades(records), batch_id=12, now=DAY_1
    )

    result = DlqWriter(settings).write(invalid, JOB, 12, now=DAY_1)

    dlq = tmp_path / "raw" / "dlq"
    written = sorted(str(p.relative_to(dlq)) for p in dlq.rglob("*.jsonl"))
    assert written == [
        "parse_json/dt=2026-01-01/whale_detector-0000000012.jsonl",
        "validity_price_positive/dt=2026-01-01/whale_detector-0000000012.jsonl",
        "validity_symbol_allowed/dt=2026-01-01/whale_detector-0000000012.jsonl",
    ]
    assert result.rows == metrics.records_failed == 3
    assert sorted(result.files) == [str(dlq / key) for key in written]
    [parse_failure] = read_lines(dlq / written[0])
    assert parse_failure == {
        "raw": MALFORMED,
        "event_id": None,
        "failed_checks": ["parse_json"],
        "reason": "parse_json",
        "job": JOB,
        "batch_id": 12,
    }
    [bad_price] = read_lines(dlq / written[1])
    assert (bad_price["event_id"], bad_price["raw"]) == ("binance:BTC-USDT:2", events[1])
    # Spark reads the DLQ back with a glob; the manifest folder stays out of it.
    back = spark.read.schema(schemas.DLQ_RECORD).json(str(dlq / "*" / "dt=*"))
    assert back.count() == 3


def test_a_replayed_batch_rewrites_its_files_instead_of_duplicating(
    job_settings: JobSettings, tmp_path: Path
) -> None:
    writer = DlqWriter(local_settings(job_settings, tmp_path))
    rows = [dlq_row("parse_json", "x"), dlq_row("validity_price_positive", "{}", "e-1")]

    first = writer.write(rows, JOB, 3, now=DAY_1)
    contents = {p: p.read_bytes() for p in tmp_path.rglob("*.jsonl")}
    again = writer.write(list(reversed(rows)), JOB, 3, now=DAY_1)

    assert again.files == first.files
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.jsonl")} == contents
    assert sum(len(read_lines(p)) for p in contents) == 2
    # Another batch is another file.
    writer.write(rows[:1], JOB, 4, now=DAY_1)
    assert len(list(tmp_path.rglob("*.jsonl"))) == 3


def test_a_replay_on_the_next_day_removes_the_first_attempts_files(
    job_settings: JobSettings, tmp_path: Path
) -> None:
    writer = DlqWriter(local_settings(job_settings, tmp_path))
    rows = [dlq_row("parse_json", "x")]

    first = writer.write(rows, JOB, 9, now=DAY_1)
    again = writer.write(rows, JOB, 9, now=DAY_2)

    assert again.removed == first.files
    files = sorted(str(p.relative_to(tmp_path / "dlq")) for p in tmp_path.rglob("*.jsonl"))
    assert files == ["parse_json/dt=2026-01-02/whale_detector-0000000009.jsonl"]
    manifest = json.loads((tmp_path / "dlq/_batches/whale_detector/0000000009.json").read_text())
    assert manifest == {"job": JOB, "batch_id": 9, "files": [files[0]]}


def test_a_batch_without_invalid_rows_writes_nothing(
    job_settings: JobSettings, tmp_path: Path
) -> None:
    result = DlqWriter(local_settings(job_settings, tmp_path)).write([], JOB, 1, now=DAY_1)

    assert (result.rows, result.files) == (0, ())
    assert not (tmp_path / "dlq").exists()


def test_the_default_date_is_the_processing_date_in_utc(
    job_settings: JobSettings, tmp_path: Path
) -> None:
    evening_in_new_york = datetime.fromisoformat("2026-01-01T20:00:00-05:00")  # 01:00 UTC on 2nd
    writer = DlqWriter(local_settings(job_settings, tmp_path), clock=lambda: evening_in_new_york)

    result = writer.write([dlq_row("parse_json", "x")], JOB, 1)

    assert "/dt=2026-01-02/" in result.files[0]


def test_an_unsupported_location_is_refused(job_settings: JobSettings) -> None:
    writer = DlqWriter(job_settings.model_copy(update={"raw_zone": "hdfs://nn/raw"}))

    with pytest.raises(DlqError, match="hdfs://nn/raw"):
        writer.write([dlq_row("parse_json", "x")], JOB, 1, now=DAY_1)


@pytest.fixture
def bucket(aws_env: dict[str, str]) -> str:
    name = f"raw-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name=aws_env["AWS_REGION"]).create_bucket(Bucket=name)
    return name


def s3_objects(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_s3_raw_zone_on_the_local_endpoint(
    spark: SparkSession, job_settings: JobSettings, bucket: str
) -> None:
    settings = job_settings.model_copy(update={"raw_zone": f"s3://{bucket}/raw"})
    records = spark.createDataFrame(
        [
            (MALFORMED.encode(), "s", "k", "1", DAY_1),
            (json.dumps(BAD_PRICE).encode(), "s", "k", "2", DAY_1),
        ],
        schemas.RAW_KINESIS_RECORD,
    )
    _, invalid, _ = DataQualityChecker(settings, JOB).validate(parse_trades(records), now=DAY_1)
    writer = DlqWriter(settings)  # the default client: boto3, honouring AWS_ENDPOINT_URL

    result = writer.write(invalid, JOB, 21, now=DAY_1)
    objects = s3_objects(bucket)
    writer.write(invalid, JOB, 21, now=DAY_1)  # replay

    assert sorted(result.files) == [
        f"s3://{bucket}/raw/dlq/parse_json/dt=2026-01-01/whale_detector-0000000021.jsonl",
        f"s3://{bucket}/raw/dlq/validity_price_positive/dt=2026-01-01/whale_detector-0000000021.jsonl",
    ]
    assert sorted(objects) == [
        "raw/dlq/_batches/whale_detector/0000000021.json",
        "raw/dlq/parse_json/dt=2026-01-01/whale_detector-0000000021.jsonl",
        "raw/dlq/validity_price_positive/dt=2026-01-01/whale_detector-0000000021.jsonl",
    ]
    assert s3_objects(bucket) == objects  # rewritten, not duplicated
    line = json.loads(objects["raw/dlq/parse_json/dt=2026-01-01/whale_detector-0000000021.jsonl"])
    assert (line["raw"], line["reason"], line["batch_id"]) == (MALFORMED, "parse_json", 21)


def test_s3_replay_on_the_next_day_moves_the_files(job_settings: JobSettings, bucket: str) -> None:
    settings = job_settings.model_copy(update={"raw_zone": f"s3://{bucket}"})
    writer = DlqWriter(settings, s3_client=boto3.client("s3"))
    rows = [dlq_row("parse_json", "x")]

    writer.write(rows, JOB, 2, now=DAY_1)
    writer.write(rows, JOB, 2, now=DAY_2)

    assert sorted(s3_objects(bucket)) == [
        "dlq/_batches/whale_detector/0000000002.json",
        "dlq/parse_json/dt=2026-01-02/whale_detector-0000000002.jsonl",
    ]


def test_s3_errors_are_translated(job_settings: JobSettings, aws_env: dict[str, str]) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    writer = DlqWriter(job_settings.model_copy(update={"raw_zone": f"s3://{missing}/raw"}))

    with pytest.raises(DlqError, match=missing):
        writer.write([dlq_row("parse_json", "x")], JOB, 1, now=DAY_1)
