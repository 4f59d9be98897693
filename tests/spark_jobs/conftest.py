"""One SparkSession for the whole run (local[2], 1 shuffle partition, UI and AQE off, UTC)."""

from __future__ import annotations

import os

# pyspark.pandas (imported by pyspark.testing) warns without it; warnings are errors here.
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from devstack.aws import LocalAws
from spark_jobs.common.session import build_session
from spark_jobs.common.settings import JobSettings, load_job_settings
from tests.spark_jobs.jvm import SPARK_CONF


@pytest.fixture(scope="session")
def spark_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("spark"))


@pytest.fixture(scope="session")
def job_settings(spark_tmp: Path) -> JobSettings:
    """The repository's config/pipeline.yaml with every path under a temporary folder."""
    return load_job_settings(
        spark={
            "master": "local[2]",
            "shuffle_partitions": 1,
            "state_store": "rocksdb",
            "conf": SPARK_CONF,
        },
        streaming={
            "watermark_s": 120,
            "trigger_interval_s": 0,
            "checkpoint_root": str(spark_tmp / "checkpoints"),
        },
        raw_zone=str(spark_tmp / "raw"),
        tables={
            "catalog": "test",
            "namespace": "crypto_pulse",
            "warehouse": str(spark_tmp / "warehouse"),
        },
    )


@pytest.fixture(scope="session")
def spark(job_settings: JobSettings, local_aws: LocalAws) -> Iterator[SparkSession]:
    # Python workers inherit the environment of the moment the session starts: point them at
    # the local AWS endpoint (with its dummy credentials) for the whole run.
    os.environ.update(local_aws.env())
    session = build_session(job_settings, "crypto-pulse-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
