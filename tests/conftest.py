"""Shared fixtures: the local AWS endpoint (moto server over real HTTP) and streams on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.aws import LocalAws
from devstack.provision import ensure_stream


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    with LocalAws(log_path=log) as aws:
        yield aws


@pytest.fixture
def aws_env(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every boto3 client of this test (and its child processes) at the local endpoint."""
    for name, value in local_aws.env().items():
        monkeypatch.setenv(name, value)
    return local_aws.env()


@pytest.fixture
def kinesis(aws_env: dict[str, str]) -> Any:
    return boto3.client("kinesis", region_name=aws_env["AWS_REGION"])


@pytest.fixture
def stream_name(kinesis: Any) -> str:
    """A fresh two-shard stream for this test."""
    name = f"trades-{uuid.uuid4().hex[:8]}"
    ensure_stream(kinesis, name, shards=2)
    return name
