"""`make submit-job` against the local AWS endpoint (moto server over HTTP): the artifacts land
in S3 and the job run exists with the request's entry point, arguments and Spark parameters.

moto stores the job driver and the configuration overrides but not `mode` or `retryPolicy`; those
are checked on the wire (the request body botocore sent). moto accepts only `emr-X.Y.0` release
labels, so its application is `emr-8.0.0` and the release check is told so
(EMR_RELEASE_LABEL_PREFIX); on AWS the label is `emr-spark-8.0.0`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.emr import start_job_run_request, submit
from deploy.errors import SubmitError
from deploy.jobs import job_named
from deploy.package import Manifest
from deploy.settings import DeploySettings, load_settings
from tests.deploy.conftest import EMR_ENV, ROOT

MOTO_RELEASE = "emr-8.0.0"  # moto's stand-in for emr-spark-8.0.0


@pytest.fixture
def emr(aws_env: dict[str, str]) -> Any:
    return boto3.client("emr-serverless", region_name=aws_env["AWS_REGION"])


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3", region_name=aws_env["AWS_REGION"])


@pytest.fixture
def deploy_env(emr: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An emr-spark-8.0.0 application and fresh buckets; their names in EMR_* variables."""
    suffix = uuid.uuid4().hex[:8]
    application = emr.create_application(
        name=f"crypto-pulse-{suffix}", releaseLabel=MOTO_RELEASE, type="SPARK"
    )
    env = {
        **EMR_ENV,
        "EMR_APPLICATION_ID": application["applicationId"],
        "EMR_ARTIFACTS_BUCKET": f"cp-artifacts-{suffix}",
        "EMR_DATA_BUCKET": f"cp-data-{suffix}",
        "EMR_RELEASE_LABEL_PREFIX": "emr-8.0",
    }
    for bucket in (env["EMR_ARTIFACTS_BUCKET"], env["EMR_DATA_BUCKET"]):
        s3.create_bucket(Bucket=bucket)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def job_runs(emr: Any, application_id: str) -> list[Any]:
    try:
        return list(emr.list_job_runs(applicationId=application_id)["jobRuns"])
    except emr.exceptions.ResourceNotFoundException:  # moto: an application that never ran
        return []


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_submit_streaming_job(
    deploy_env: dict[str, str], emr: Any, s3: Any, built: tuple[Path, Manifest]
) -> None:
    build_dir, manifest = built
    settings = load_settings()
    sent: list[dict[str, Any]] = []
    emr.meta.events.register(
        "before-send.emr-serverless.StartJobRun",
        lambda request, **_: sent.append(json.loads(request.body)),
    )
    job = job_named("volume_anomaly")

    result = submit(settings, manifest, job, build_dir, emr, s3, client_token="t-1")

    bucket = deploy_env["EMR_ARTIFACTS_BUCKET"]
    prefix = f"crypto-pulse/artifacts/{manifest.build_id}/"
    assert keys(s3, bucket) == sorted(prefix + name for name in manifest.artifacts)
    for name in manifest.artifacts:
        body = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
        assert body == (build_dir / name).read_bytes()
    assert result.uploaded == [
        f"s3://{bucket}/{prefix}{name}" for name in sorted(manifest.artifacts)
    ]

    expected = start_job_run_request(settings, manifest, job, "t-1")
    run = emr.get_job_run(applicationId=settings.application_id, jobRunId=result.job_run_id)[
        "jobRun"
    ]
    assert run["name"] == "crypto-pulse-volume_anomaly"
    assert run["executionRole"] == EMR_ENV["EMR_EXECUTION_ROLE_ARN"]
    assert run["releaseLabel"] == MOTO_RELEASE
    spark_submit = run["jobDriver"]["sparkSubmit"]
    assert spark_submit["entryPoint"] == f"s3://{bucket}/{prefix}jobs/volume_anomaly.py"
    assert spark_submit["entryPointArguments"] == ["--features", "code/config/features.yaml"]
    assert spark_submit == expected["jobDriver"]["sparkSubmit"]
    assert (
        "--conf spark.emr-serverless.driverEnv.CRYPTO_PULSE_STREAM__SOURCE=aws-kinesis"
        in (spark_submit["sparkSubmitParameters"])
    )
    assert run["configurationOverrides"] == expected["configurationOverrides"]

    assert len(sent) == 1
    assert sent[0]["mode"] == "STREAMING"
    assert sent[0]["retryPolicy"] == {"maxFailedAttemptsPerHour": 5}
    assert sent[0]["executionTimeoutMinutes"] == 0
    assert sent[0]["clientToken"] == "t-1"
    assert result.to_json()["jobRunId"] == result.job_run_id


def test_submit_batch_job_with_the_cli(
    deploy_env: dict[str, str], emr: Any, s3: Any, tmp_path: Path
) -> None:
    """What `make submit-job` runs (after `make package`), as a separate process."""
    build_dir = tmp_path / "emr"
    submit_command = ["submit", "--job", "reprocess_anomalies", "--build-dir", str(build_dir)]
    for command in (
        ["package", "--out", str(build_dir)],
        [*submit_command, "--", "--snapshot-id", "42"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "deploy", *command],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["mode"] == "BATCH"
    run = emr.get_job_run(applicationId=printed["applicationId"], jobRunId=printed["jobRunId"])[
        "jobRun"
    ]
    assert run["name"] == "crypto-pulse-reprocess_anomalies"
    assert run["jobDriver"]["sparkSubmit"]["entryPoint"] == printed["entryPoint"]
    assert printed["entryPoint"].endswith("/jobs/reprocess_anomalies.py")
    assert run["jobDriver"]["sparkSubmit"]["entryPointArguments"] == [
        "--features",
        "code/config/features.yaml",
        "--snapshot-id",
        "42",
    ]
    parameters = run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert "spark.jars" not in parameters
    assert run["executionTimeoutMinutes"] == 720
    assert len(keys(s3, deploy_env["EMR_ARTIFACTS_BUCKET"])) == len(printed["uploaded"])


def test_an_application_of_another_release_gets_nothing(
    deploy_env: dict[str, str], emr: Any, s3: Any, built: tuple[Path, Manifest]
) -> None:
    build_dir, manifest = built
    old = emr.create_application(name="old", releaseLabel="emr-7.1.0", type="SPARK")
    settings = load_settings(application_id=old["applicationId"])
    with pytest.raises(SubmitError, match=r"release 'emr-7\.1\.0': the jobs need emr-8\.0\.x"):
        submit(settings, manifest, job_named("whale_detector"), build_dir, emr, s3)
    assert keys(s3, deploy_env["EMR_ARTIFACTS_BUCKET"]) == []
    assert job_runs(emr, old["applicationId"]) == []


def test_aws_errors_are_translated(
    deploy_env: dict[str, str], emr: Any, s3: Any, built: tuple[Path, Manifest]
) -> None:
    build_dir, manifest = built
    missing: DeploySettings = load_settings(application_id="00nosuchapp")
    with pytest.raises(SubmitError, match="GetApplication 00nosuchapp failed: ResourceNotFound"):
        submit(missing, manifest, job_named("trade_archiver"), build_dir, emr, s3)
    no_bucket = load_settings(artifacts_bucket="cp-no-such-bucket")
    with pytest.raises(SubmitError, match=r"PutObject s3://cp-no-such-bucket/.* NoSuchBucket"):
        submit(no_bucket, manifest, job_named("trade_archiver"), build_dir, emr, s3)
