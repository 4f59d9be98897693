"""The deployer's settings: from EMR_* variables, every error naming its variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deploy.errors import DeploySettingsError
from deploy.settings import load_settings
from tests.deploy.conftest import EMR_ENV, ROOT


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("AWS_REGION", raising=False)
    for name, value in EMR_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(EMR_ENV)


def test_settings_come_from_the_environment(env: dict[str, str]) -> None:
    settings = load_settings()
    assert settings.application_id == "00fabcdefghij123"
    assert settings.execution_role_arn == "arn:aws:iam::123456789012:role/crypto-pulse-job"
    assert (settings.artifacts_bucket, settings.data_bucket) == ("cp-artifacts", "cp-data")
    assert settings.region == "us-east-1"
    assert settings.log_group == "/aws/emr-serverless/crypto-pulse"
    assert settings.max_failed_attempts_per_hour == 5
    assert settings.spark_conf == {}


def test_region_falls_back_to_aws_region(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMR_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert load_settings().region == "eu-west-1"
    monkeypatch.setenv("EMR_REGION", "us-west-2")
    assert load_settings().region == "us-west-2"


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(DeploySettingsError) as caught:
        load_settings()
    message = str(caught.value)
    for name in (
        "EMR_APPLICATION_ID: required",
        "EMR_EXECUTION_ROLE_ARN: required",
        "EMR_ARTIFACTS_BUCKET: required",
        "EMR_DATA_BUCKET: required",
        "EMR_REGION (or AWS_REGION): required",
    ):
        assert name in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("EMR_EXECUTION_ROLE_ARN", "crypto-pulse-job", "EMR_EXECUTION_ROLE_ARN: String should"),
        ("EMR_DATA_BUCKET", "s3://cp-data", "EMR_DATA_BUCKET: not an S3 bucket name"),
        ("EMR_APPLICATION_ID", "App-1", "EMR_APPLICATION_ID: String should"),
        ("EMR_REGION", "mars", "EMR_REGION (or AWS_REGION): String should"),
        ("EMR_MAX_FAILED_ATTEMPTS_PER_HOUR", "0", "EMR_MAX_FAILED_ATTEMPTS_PER_HOUR: Input"),
        ("EMR_SPARK_CONF", '{"spark.executor.memory": "4 g"}', "EMR_SPARK_CONF: spark.executor"),
        ("EMR_LOGS_PREFIX", "///", "EMR_LOGS_PREFIX: not an S3 key prefix"),
    ],
)
def test_invalid_values_are_named_with_the_value(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(DeploySettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "; " not in str(caught.value)  # only the bad setting is reported


def test_prefixes_lose_their_slashes(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMR_ARTIFACTS_PREFIX", "/team/artifacts/")
    assert load_settings().artifacts_prefix == "team/artifacts"


def test_the_cli_exits_2_naming_the_variable(tmp_path: os.PathLike[str]) -> None:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("EMR_") and name != "AWS_REGION"
    }
    environ.update({**EMR_ENV, "EMR_DATA_BUCKET": "Data_Bucket"})
    result = subprocess.run(
        [sys.executable, "-m", "deploy", "submit", "--job", "volume_anomaly", "--dry-run"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: invalid deploy settings: EMR_DATA_BUCKET: not an S3 bucket name" in (
        result.stderr
    )
    assert "'Data_Bucket'" in result.stderr
