"""The StartJobRun request, built purely from the settings and the package manifest."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from deploy.emr import (
    KINESIS_CONNECTOR_JAR,
    active_runs,
    application_problems,
    job_environment,
    spark_submit_parameters,
    start_job_run_request,
    uploads,
)
from deploy.errors import PackageError
from deploy.jobs import JOBS, STREAMING_JOBS, job_named
from deploy.package import DEPS_ARCHIVE, Artifact, Manifest
from deploy.settings import DeploySettings
from spark_jobs.common.iceberg import configured_catalog
from spark_jobs.common.settings import load_job_settings
from tests.deploy.conftest import ROOT

TOKEN = "token-1"


def properties(parameters: str) -> list[tuple[str, str]]:
    """`--conf k=v --conf k=v` back to pairs (and nothing else is allowed in the string)."""
    words = shlex.split(parameters)
    assert words[::2] == ["--conf"] * (len(words) // 2)
    return [tuple(word.split("=", 1)) for word in words[1::2]]  # type: ignore[misc]


def validate(request: Any) -> None:
    """The request is valid for botocore's model of StartJobRun (names, types, enums)."""
    model = botocore.session.get_session().get_service_model("emr-serverless")
    report = ParamValidator().validate(request, model.operation_model("StartJobRun").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_streaming_job_request(settings: DeploySettings, manifest: Manifest) -> None:
    request = start_job_run_request(settings, manifest, job_named("volume_anomaly"), TOKEN)
    base = f"s3://cp-artifacts/crypto-pulse/artifacts/{manifest.build_id}"
    data = "s3://cp-data"
    env = {
        "AWS_REGION": "us-east-1",
        "CRYPTO_PULSE_CONFIG": "code/config/pipeline.yaml",
        "CRYPTO_PULSE_STREAM__SOURCE": "aws-kinesis",
        "CRYPTO_PULSE_STREAM__REGION": "us-east-1",
        "CRYPTO_PULSE_SPARK__MASTER": "launcher",
        "CRYPTO_PULSE_STREAMING__CHECKPOINT_ROOT": f"{data}/checkpoints",
        "CRYPTO_PULSE_RAW_ZONE": f"{data}/raw",
        "CRYPTO_PULSE_TABLES__WAREHOUSE": f"{data}/warehouse",
        "PYICEBERG_CATALOG__CRYPTO_PULSE__TYPE": "glue",
        "PYICEBERG_CATALOG__CRYPTO_PULSE__WAREHOUSE": f"{data}/warehouse",
        "PYICEBERG_CATALOG__CRYPTO_PULSE__GLUE__REGION": "us-east-1",
        "PYICEBERG_CATALOG__CRYPTO_PULSE__S3__REGION": "us-east-1",
    }
    expected_properties = [
        ("spark.submit.pyFiles", f"{base}/crypto_pulse.zip"),
        ("spark.archives", f"{base}/crypto_pulse.zip#code"),
        ("spark.jars", KINESIS_CONNECTOR_JAR),
        ("spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON", "/usr/bin/python3.11"),
        ("spark.emr-serverless.driverEnv.PYSPARK_PYTHON", "/usr/bin/python3.11"),
        ("spark.executorEnv.PYSPARK_PYTHON", "/usr/bin/python3.11"),
        *((f"spark.emr-serverless.driverEnv.{k}", v) for k, v in env.items()),
        *((f"spark.executorEnv.{k}", v) for k, v in env.items()),
    ]
    assert request == {
        "applicationId": "00fabcdefghij123",
        "clientToken": TOKEN,
        "executionRoleArn": "arn:aws:iam::123456789012:role/crypto-pulse-job",
        "name": "crypto-pulse-volume_anomaly",
        "mode": "STREAMING",
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": f"{base}/jobs/volume_anomaly.py",
                "entryPointArguments": ["--features", "code/config/features.yaml"],
                "sparkSubmitParameters": " ".join(
                    f"--conf {key}={value}" for key, value in expected_properties
                ),
            }
        },
        "configurationOverrides": {
            "monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": "s3://cp-artifacts/crypto-pulse/logs/"},
                "cloudWatchLoggingConfiguration": {
                    "enabled": True,
                    "logGroupName": "/aws/emr-serverless/crypto-pulse",
                    "logStreamNamePrefix": "crypto-pulse/volume_anomaly",
                    "logTypes": {
                        "SPARK_DRIVER": ["STDOUT", "STDERR"],
                        "SPARK_EXECUTOR": ["STDOUT", "STDERR"],
                    },
                },
            }
        },
        "executionTimeoutMinutes": 0,
        "retryPolicy": {"maxFailedAttemptsPerHour": 5},
    }
    validate(request)


def test_batch_job_request(settings: DeploySettings, manifest: Manifest) -> None:
    settings = settings.model_copy(update={"batch_timeout_minutes": 90, "stream_name": "trades"})
    job = job_named("historical_loader")
    request = start_job_run_request(
        settings, manifest, job, TOKEN, ["--symbol", "BTC-USDT", "--from-id", "1"]
    )
    base = f"s3://cp-artifacts/crypto-pulse/artifacts/{manifest.build_id}"
    assert request["mode"] == "BATCH"
    assert request["executionTimeoutMinutes"] == 90
    assert "retryPolicy" not in request  # a batch job is rerun by a person, not by EMR
    driver = request["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"{base}/jobs/historical_loader.py"
    assert driver["entryPointArguments"] == ["--symbol", "BTC-USDT", "--from-id", "1"]
    conf = dict(properties(driver["sparkSubmitParameters"]))
    assert "spark.jars" not in conf  # no Kinesis in a batch job
    assert conf["spark.submit.pyFiles"] == f"{base}/crypto_pulse.zip"
    assert conf["spark.emr-serverless.driverEnv.CRYPTO_PULSE_STREAM__NAME"] == "trades"
    assert conf["spark.emr-serverless.driverEnv.CRYPTO_PULSE_RAW_ZONE"] == "s3://cp-data/raw"
    validate(request)

    reprocess = start_job_run_request(
        settings, manifest, job_named("reprocess_anomalies"), TOKEN, ["--snapshot-id", "7"]
    )
    assert reprocess["jobDriver"]["sparkSubmit"]["entryPointArguments"] == [
        "--features",
        "code/config/features.yaml",
        "--snapshot-id",
        "7",
    ]


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_job_has_its_mode_and_the_same_environment_everywhere(
    settings: DeploySettings, manifest: Manifest, name: str
) -> None:
    request = start_job_run_request(settings, manifest, job_named(name), TOKEN)
    validate(request)
    assert request["mode"] == ("STREAMING" if name in STREAMING_JOBS else "BATCH")
    assert ("retryPolicy" in request) == (name in STREAMING_JOBS)
    conf = properties(request["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"])
    driver = {k.split(".", 3)[3]: v for k, v in conf if k.startswith("spark.emr-serverless.")}
    executor = {k.removeprefix("spark.executorEnv."): v for k, v in conf if "executorEnv" in k}
    assert driver.pop("PYSPARK_DRIVER_PYTHON") == driver["PYSPARK_PYTHON"]
    assert driver == executor  # the driver and the executors see the same environment
    assert len(conf) == len(dict(conf))  # no property given twice


def test_archive_dependencies_use_the_environment_archive(
    settings: DeploySettings, manifest: Manifest
) -> None:
    archive = replace(
        manifest,
        python_deps="archive",
        artifacts={**manifest.artifacts, DEPS_ARCHIVE: Artifact("0" * 64, 1)},
    )
    request = start_job_run_request(settings, archive, job_named("whale_detector"), TOKEN)
    conf = dict(properties(request["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]))
    base = f"s3://cp-artifacts/crypto-pulse/artifacts/{archive.build_id}"
    assert conf["spark.archives"] == (
        f"{base}/crypto_pulse.zip#code,{base}/pyspark_deps.tar.gz#environment"
    )
    for key in (
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON",
        "spark.executorEnv.PYSPARK_PYTHON",
    ):
        assert conf[key] == "./environment/bin/python"
    assert [u.name for u in uploads(settings, archive)] == sorted(archive.artifacts)


def test_extra_spark_conf_comes_last(settings: DeploySettings, manifest: Manifest) -> None:
    settings = settings.model_copy(
        update={"spark_conf": {"spark.executor.memory": "8g", "spark.driver.cores": "2"}}
    )
    request = start_job_run_request(settings, manifest, job_named("trade_archiver"), TOKEN)
    conf = properties(request["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"])
    assert conf[-2:] == [("spark.driver.cores", "2"), ("spark.executor.memory", "8g")]


def test_whitespace_in_a_property_is_refused() -> None:
    with pytest.raises(ValueError, match=r"spark\.x='a b' is empty or holds whitespace"):
        spark_submit_parameters([("spark.x", "a b")])


def test_a_job_without_its_script_is_not_submitted(
    settings: DeploySettings, manifest: Manifest
) -> None:
    unwritten = replace(
        manifest,
        jobs={k: v for k, v in manifest.jobs.items() if k != "schema_evolution_demo"},
        missing_jobs=["schema_evolution_demo"],
    )
    with pytest.raises(PackageError, match=r"schema_evolution_demo\.py is not written yet"):
        start_job_run_request(settings, unwritten, job_named("schema_evolution_demo"), TOKEN)


def test_the_environment_is_what_the_jobs_settings_and_pyiceberg_read(
    settings: DeploySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = job_environment(settings.model_copy(update={"stream_name": "trades-prod"}))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # On EMR the path is relative to the working folder where the code archive is unpacked.
    monkeypatch.setenv("CRYPTO_PULSE_CONFIG", str(ROOT / "config" / "pipeline.yaml"))
    job = load_job_settings()
    assert job.stream.source == "aws-kinesis"
    assert job.stream.name == "trades-prod"
    assert job.checkpoint("volume_anomaly") == "s3://cp-data/checkpoints/volume_anomaly"
    assert job.raw_zone == "s3://cp-data/raw"
    assert job.tables.warehouse == "s3://cp-data/warehouse"
    assert job.tables.catalog == settings.iceberg_catalog
    assert configured_catalog(job.tables.catalog) == {
        "type": "glue",
        "warehouse": "s3://cp-data/warehouse",
        "glue.region": "us-east-1",
        "s3.region": "us-east-1",
    }


def test_application_checks() -> None:
    prefix = "emr-spark-8.0"
    good: Any = {"releaseLabel": "emr-spark-8.0.0", "type": "Spark", "state": "CREATED"}
    assert application_problems(good, prefix) == []
    old: Any = {**good, "releaseLabel": "emr-7.9.0"}
    assert application_problems(old, prefix) == [
        "release 'emr-7.9.0': the jobs need emr-spark-8.0.x (Spark 4.0)"
    ]
    hive: Any = {**good, "type": "HIVE", "state": "TERMINATED"}
    assert application_problems(hive, prefix) == [
        "type 'HIVE' is not Spark",
        "state TERMINATED",
    ]


def test_active_runs_of_the_job_only() -> None:
    summaries: Any = [
        {"id": "a", "name": "crypto-pulse-volume_anomaly", "state": "RUNNING"},
        {"id": "b", "name": "crypto-pulse-volume_anomaly", "state": "CANCELLED"},
        {"id": "c", "name": "crypto-pulse-whale_detector", "state": "RUNNING"},
        {"id": "d", "name": "crypto-pulse-volume_anomaly", "state": "SUBMITTED"},
    ]
    assert active_runs(summaries, job_named("volume_anomaly")) == ["a", "d"]


def test_artifacts_go_under_the_build_id(settings: DeploySettings, manifest: Manifest) -> None:
    keys = {upload.name: upload.key for upload in uploads(settings, manifest)}
    assert set(keys) == set(manifest.artifacts)
    assert all(
        key == f"crypto-pulse/artifacts/{manifest.build_id}/{name}" for name, key in keys.items()
    )
    assert Path(keys["crypto_pulse.zip"]).name == "crypto_pulse.zip"
