"""Create what the pipeline needs in an AWS account (local or real); running it twice is harmless.

python -m devstack.provision [--stream NAME] [--shards N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any

import boto3


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.provision", description=__doc__)
    parser.add_argument("--stream", default="crypto-pulse-trades")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args(argv)
    arn = ensure_stream(kinesis(), args.stream, args.shards)
    print(json.dumps({"stream": args.stream, "arn": arn}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
