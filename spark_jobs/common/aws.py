"""AWS clients for the jobs, created where they are used (never at import). boto3 honours
AWS_ENDPOINT_URL itself, so the same code talks to AWS or to the local endpoint."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from spark_jobs.common.settings import JobSettings

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def client(service: str, settings: JobSettings) -> Any:
    return boto3.client(service, region_name=settings.stream.region, config=_CONFIG)  # type: ignore[call-overload]
