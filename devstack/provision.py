"""Create what the pipeline needs in an AWS account (local or real); running it twice is harmless.

python -m devstack.provision [--stream NAME] [--shards N]     # the stream (the default)
python -m devstack.provision --tables [--bucket NAME ...]     # Iceberg tables, S3 buckets only
python -m devstack.provision --all                           # stream, buckets, tables

The tables go to the catalog the job settings name (pyiceberg's configuration, else the local
SQLite catalog); `--all` also creates the buckets of the settings' s3:// paths.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from spark_jobs.common.settings import JobSettings


def region() -> str:
    """AWS_REGION, as the producer reads it (older botocore only reads AWS_DEFAULT_REGION)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def kinesis() -> Any:
    return boto3.client("kinesis", region_name=region())


def ensure_stream(client: Any, name: str, shards: int = 1, timeout_s: float = 30.0) -> str:
    """Create the stream unless it exists, wait until ACTIVE; returns its ARN."""
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + timeout_s
    while True:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return str(summary["StreamARN"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {name} not ACTIVE after {timeout_s} s")
        time.sleep(0.2)


def read_stream(client: Any, name: str) -> list[dict[str, Any]]:
    """Every record currently in the stream, all shards, decoded from JSON (for tests/demo)."""
    records: list[dict[str, Any]] = []
    shards = client.list_shards(StreamName=name)["Shards"]
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend(json.loads(r["Data"]) for r in page["Records"])
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return records


def ensure_alerts_table(dynamodb: Any, name: str, timeout_s: float = 30.0) -> str:
    """Create the alerts table (key, symbol GSI, on-demand) unless it exists, wait until ACTIVE,
    enable TTL on `expires_at`; returns the table ARN."""
    # Imported here: the definition lives with the sink, and only this function needs it.
    from spark_jobs.common.dynamodb import TTL_ATTRIBUTE, alerts_table_definition

    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(**alerts_table_definition(name))
    deadline = time.monotonic() + timeout_s
    while True:
        table = dynamodb.describe_table(TableName=name)["Table"]
        indexes = table.get("GlobalSecondaryIndexes", [])
        if table["TableStatus"] == "ACTIVE" and all(
            index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
        ):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} not ACTIVE after {timeout_s} s")
        time.sleep(0.2)
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    return str(table["TableArn"])


def s3() -> Any:
    return boto3.client("s3", region_name=region())


def ensure_bucket(client: Any, name: str) -> str:
    """Create the S3 bucket unless it exists; returns its name. Fails if it is not ours."""
    try:
        client.head_bucket(Bucket=name)
        return name
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    request: dict[str, Any] = {"Bucket": name}
    if client.meta.region_name not in (None, "us-east-1"):  # us-east-1 takes no constraint
        request["CreateBucketConfiguration"] = {"LocationConstraint": client.meta.region_name}
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(**request)
    return name


def settings_buckets(settings: JobSettings) -> list[str]:
    """The buckets the job settings' s3:// paths name (raw zone, checkpoints, warehouse)."""
    from spark_jobs.common.iceberg import configured_catalog

    catalog = configured_catalog(settings.tables.catalog) or {}
    paths = [
        settings.raw_zone,
        settings.streaming.checkpoint_root,
        settings.tables.warehouse,
        catalog.get("warehouse", ""),
    ]
    buckets = [p.removeprefix("s3://").split("/", 1)[0] for p in paths if p.startswith("s3://")]
    return list(dict.fromkeys(buckets))


def ensure_iceberg(settings: JobSettings) -> list[str]:
    """The Iceberg namespace and every table, in the catalog the settings name (pyiceberg's
    configuration, else the local SQLite catalog); returns the tables' identifiers."""
    # Imported here: stream-only provisioning needs no pyiceberg.
    from spark_jobs.common.iceberg import ensure_tables, load_catalog

    tables = ensure_tables(load_catalog(settings), settings.tables.namespace)
    return [".".join(table.name()) for table in tables.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.provision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stream", default="crypto-pulse-trades")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument(
        "--tables", action="store_true", help="the Iceberg namespace and tables (job settings)"
    )
    parser.add_argument(
        "--bucket", action="append", default=[], metavar="NAME", help="an S3 bucket (repeatable)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="the stream, the buckets the job settings name, --bucket ones and the tables",
    )
    args = parser.parse_args(argv)
    from spark_jobs.common.settings import load_job_settings

    selected = args.tables or bool(args.bucket)
    if args.all or not selected:
        arn = ensure_stream(kinesis(), args.stream, args.shards)
        print(json.dumps({"stream": args.stream, "arn": arn}))
    settings = load_job_settings() if args.all or args.tables else None
    buckets = list(args.bucket) + (settings_buckets(settings) if args.all and settings else [])
    if buckets:
        client = s3()
        for name in dict.fromkeys(buckets):
            print(json.dumps({"bucket": ensure_bucket(client, name)}))
    if settings is not None:
        print(json.dumps({"tables": ensure_iceberg(settings)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
