"""Starting a job on EMR Serverless (SPEC §9).

The StartJobRun request is built by pure functions from the settings and the package manifest
(`start_job_run_request`, a dict the tests compare field by field); `submit` is the thin adapter
that checks the application, uploads the artifacts and calls StartJobRun with injected clients.

What a job run gets:

- `entryPoint`: its script, uploaded under `s3://<artifacts bucket>/<prefix>/<build id>/`
  (content-addressed: a retried streaming job never sees a newer upload).
- `spark.submit.pyFiles`: the code zip (`spark_jobs/` importable on the driver and executors);
  the same zip in `spark.archives` as `#code`, so `code/config/*.yaml` are files in the working
  folder (`CRYPTO_PULSE_CONFIG`, `--features`).
- Python: the custom image's interpreter (default) or the venv-pack archive (`#environment`).
- Streaming jobs: the bundled `aws-kinesis` connector jar, `mode=STREAMING`, no timeout and a
  retry policy (`maxFailedAttemptsPerHour`). Batch jobs: `mode=BATCH` with a timeout, no retry.
- The same environment on the driver (`spark.emr-serverless.driverEnv.*`) and the executors
  (`spark.executorEnv.*`): the connector source, S3 checkpoints, raw zone and warehouse, and the
  Glue catalog for pyiceberg.
- Logs to CloudWatch Logs (driver and executor stdout/stderr) and to S3.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy.errors import PackageError, SubmitError
from deploy.jobs import Job
from deploy.package import Manifest
from deploy.settings import DeploySettings

if TYPE_CHECKING:
    from mypy_boto3_emr_serverless import EMRServerlessClient
    from mypy_boto3_emr_serverless.literals import JobRunStateType
    from mypy_boto3_emr_serverless.type_defs import (
        ApplicationTypeDef,
        JobRunSummaryTypeDef,
        MonitoringConfigurationTypeDef,
        StartJobRunRequestTypeDef,
    )
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# Bundled with EMR 7.1+ (emr-spark-8.0.0 included), not on the classpath by default.
KINESIS_CONNECTOR_JAR = (
    "/usr/share/aws/kinesis/spark-sql-kinesis/lib/spark-streaming-sql-kinesis-connector.jar"
)
CODE_ALIAS = "code"  # spark.archives unpacks the code zip as ./code in the working folder
DEPS_ALIAS = "environment"  # ... and the dependency archive as ./environment
CONFIG_FILE = f"{CODE_ALIAS}/config/pipeline.yaml"
FEATURES_FILE = f"{CODE_ALIAS}/config/features.yaml"
ARCHIVE_PYTHON = f"./{DEPS_ALIAS}/bin/python"
# Data bucket layout (the job role's S3 grants name the same prefixes).
CHECKPOINTS_PREFIX = "checkpoints"
RAW_PREFIX = "raw"
WAREHOUSE_PREFIX = "warehouse"
LOG_TYPES = ["STDOUT", "STDERR"]
# Job run states that have not ended.
ACTIVE_STATES: tuple[JobRunStateType, ...] = (
    "SUBMITTED",
    "PENDING",
    "SCHEDULED",
    "RUNNING",
    "QUEUED",
    "CANCELLING",
)
DRIVER_ENV = "spark.emr-serverless.driverEnv."
EXECUTOR_ENV = "spark.executorEnv."


# --- The request (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One artifact of the package and where it goes."""

    name: str  # path in the build folder
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def artifact_upload(settings: DeploySettings, manifest: Manifest, name: str) -> Upload:
    key = f"{settings.artifacts_prefix}/{manifest.build_id}/{name}"
    return Upload(name, settings.artifacts_bucket, key)


def uploads(settings: DeploySettings, manifest: Manifest) -> list[Upload]:
    """Every artifact of the package (entry scripts, code zip, dependency archive)."""
    return [artifact_upload(settings, manifest, name) for name in sorted(manifest.artifacts)]


LAUNCHER_MASTER = "launcher"  # spark_jobs.common.session: leave the master to spark-submit


def job_environment(settings: DeploySettings) -> dict[str, str]:
    """The job's environment on EMR: what differs from config/pipeline.yaml's local defaults.

    pyiceberg reads `PYICEBERG_CATALOG__<NAME>__<KEY>` (`__` inside a key is a dot)."""
    data = f"s3://{settings.data_bucket}"
    warehouse = f"{data}/{WAREHOUSE_PREFIX}"
    catalog = f"PYICEBERG_CATALOG__{settings.iceberg_catalog.upper()}__"
    env = {
        "AWS_REGION": settings.region,
        "CRYPTO_PULSE_CONFIG": CONFIG_FILE,
        "CRYPTO_PULSE_STREAM__SOURCE": "aws-kinesis",
        "CRYPTO_PULSE_STREAM__REGION": settings.region,
        # The master is EMR's (spark-submit's), never config/pipeline.yaml's local[2].
        "CRYPTO_PULSE_SPARK__MASTER": LAUNCHER_MASTER,
        "CRYPTO_PULSE_STREAMING__CHECKPOINT_ROOT": f"{data}/{CHECKPOINTS_PREFIX}",
        "CRYPTO_PULSE_RAW_ZONE": f"{data}/{RAW_PREFIX}",
        "CRYPTO_PULSE_TABLES__WAREHOUSE": warehouse,
        f"{catalog}TYPE": "glue",
        f"{catalog}WAREHOUSE": warehouse,
        f"{catalog}GLUE__REGION": settings.region,
        f"{catalog}S3__REGION": settings.region,
    }
    if settings.stream_name:
        env["CRYPTO_PULSE_STREAM__NAME"] = settings.stream_name
    return env


def spark_properties(
    settings: DeploySettings, manifest: Manifest, job: Job
) -> list[tuple[str, str]]:
    """The job's Spark properties, in the order they are passed."""
    code = artifact_upload(settings, manifest, manifest.code_zip).uri
    archives = [f"{code}#{CODE_ALIAS}"]
    if manifest.deps_archive is not None:
        deps = artifact_upload(settings, manifest, manifest.deps_archive).uri
        archives.append(f"{deps}#{DEPS_ALIAS}")
        python = ARCHIVE_PYTHON
    else:
        python = settings.image_python
    properties = [
        ("spark.submit.pyFiles", code),
        ("spark.archives", ",".join(archives)),
    ]
    if job.mode == "STREAMING":
        properties.append(("spark.jars", KINESIS_CONNECTOR_JAR))
    properties += [
        (f"{DRIVER_ENV}PYSPARK_DRIVER_PYTHON", python),
        (f"{DRIVER_ENV}PYSPARK_PYTHON", python),
        (f"{EXECUTOR_ENV}PYSPARK_PYTHON", python),
    ]
    env = job_environment(settings)
    properties += [(f"{DRIVER_ENV}{name}", value) for name, value in env.items()]
    properties += [(f"{EXECUTOR_ENV}{name}", value) for name, value in env.items()]
    properties += sorted(settings.spark_conf.items())
    return properties


def spark_submit_parameters(properties: Sequence[tuple[str, str]]) -> str:
    """`--conf key=value ...`; EMR splits the string on whitespace, so none is allowed inside."""
    for key, value in properties:
        if not value or any(char.isspace() for char in key + value):
            raise ValueError(f"spark property {key}={value!r} is empty or holds whitespace")
    return " ".join(f"--conf {key}={value}" for key, value in properties)


def entry_point_arguments(job: Job, arguments: Sequence[str] = ()) -> list[str]:
    """Jobs with a detector registry read the shipped features file (their default path is
    inside the zip, not a file); extra arguments are appended."""
    if job.reads_features:
        return ["--features", FEATURES_FILE, *arguments]
    return list(arguments)


def monitoring_configuration(settings: DeploySettings, job: Job) -> MonitoringConfigurationTypeDef:
    return {
        "s3MonitoringConfiguration": {
            "logUri": f"s3://{settings.artifacts_bucket}/{settings.logs_prefix}/"
        },
        "cloudWatchLoggingConfiguration": {
            "enabled": True,
            "logGroupName": settings.log_group,
            "logStreamNamePrefix": f"crypto-pulse/{job.name}",
            "logTypes": {"SPARK_DRIVER": LOG_TYPES, "SPARK_EXECUTOR": LOG_TYPES},
        },
    }


def entry_point(settings: DeploySettings, manifest: Manifest, job: Job) -> str:
    if job.name not in manifest.jobs:
        where = "is not written yet" if job.name in manifest.missing_jobs else "is not packaged"
        raise PackageError(f"job {job.name}: {job.source} {where}; nothing to submit")
    return artifact_upload(settings, manifest, manifest.jobs[job.name]).uri


def start_job_run_request(
    settings: DeploySettings,
    manifest: Manifest,
    job: Job,
    client_token: str,
    arguments: Sequence[str] = (),
) -> StartJobRunRequestTypeDef:
    """The StartJobRun request for `job`. `client_token` makes a retried call start one run."""
    request: StartJobRunRequestTypeDef = {
        "applicationId": settings.application_id,
        "clientToken": client_token,
        "executionRoleArn": settings.execution_role_arn,
        "name": job_run_name(job),
        "mode": job.mode,
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": entry_point(settings, manifest, job),
                "entryPointArguments": entry_point_arguments(job, arguments),
                "sparkSubmitParameters": spark_submit_parameters(
                    spark_properties(settings, manifest, job)
                ),
            }
        },
        "configurationOverrides": {
            "monitoringConfiguration": monitoring_configuration(settings, job)
        },
    }
    if job.mode == "STREAMING":
        # A streaming job runs until cancelled; EMR restarts it after a failure, at most this
        # often per hour (then the run fails, and an alarm should say so).
        request["executionTimeoutMinutes"] = 0
        request["retryPolicy"] = {"maxFailedAttemptsPerHour": settings.max_failed_attempts_per_hour}
    else:
        request["executionTimeoutMinutes"] = settings.batch_timeout_minutes
    return request


def application_problems(application: ApplicationTypeDef, release_label_prefix: str) -> list[str]:
    """Why the application cannot run the jobs (empty when it can)."""
    problems = []
    label = application.get("releaseLabel", "")
    if not label.startswith(release_label_prefix):
        problems.append(f"release {label!r}: the jobs need {release_label_prefix}.x (Spark 4.0)")
    if application.get("type", "").upper() != "SPARK":
        problems.append(f"type {application.get('type')!r} is not Spark")
    if application.get("state") in ("TERMINATED", "STOPPING"):
        problems.append(f"state {application.get('state')}")
    return problems


def job_run_name(job: Job) -> str:
    return f"crypto-pulse-{job.name}"


def active_runs(summaries: Iterable[JobRunSummaryTypeDef], job: Job) -> list[str]:
    """Ids of the runs of `job` that have not ended: a second streaming run would share their
    checkpoint."""
    return sorted(
        summary["id"]
        for summary in summaries
        if summary.get("name") == job_run_name(job) and summary.get("state") in ACTIVE_STATES
    )


# --- The adapter (boto3) -------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    job: str
    mode: str
    application_id: str
    job_run_id: str
    arn: str
    entry_point: str
    uploaded: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "mode": self.mode,
            "applicationId": self.application_id,
            "jobRunId": self.job_run_id,
            "arn": self.arn,
            "entryPoint": self.entry_point,
            "uploaded": self.uploaded,
        }


def _aws_error(action: str, exc: Exception) -> SubmitError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        detail = f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
    else:
        detail = str(exc)
    return SubmitError(f"{action} failed: {detail}")


def check_application(
    emr: EMRServerlessClient, settings: DeploySettings, manifest: Manifest
) -> ApplicationTypeDef:
    """The application, if it can run the package; SubmitError says why not."""
    try:
        application = emr.get_application(applicationId=settings.application_id)["application"]
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(f"GetApplication {settings.application_id}", exc) from exc
    problems = application_problems(application, settings.release_label_prefix)
    if problems:
        raise SubmitError(
            f"EMR Serverless application {settings.application_id}: " + "; ".join(problems)
        )
    if manifest.python_deps == "image" and "imageConfiguration" not in application:
        log.warning(
            "application %s reports no custom image: the jobs' Python %s and dependencies "
            "come from deploy/emr-image.Dockerfile (see deploy/README.md)",
            settings.application_id,
            manifest.python,
        )
    return application


def check_not_running(emr: EMRServerlessClient, settings: DeploySettings, job: Job) -> None:
    """SubmitError if a run of the streaming `job` is still active (same checkpoint)."""
    try:
        pages = emr.get_paginator("list_job_runs").paginate(
            applicationId=settings.application_id, states=list(ACTIVE_STATES)
        )
        running = active_runs((run for page in pages for run in page["jobRuns"]), job)
    except ClientError as exc:
        # The local endpoint answers ResourceNotFound for an application with no runs yet; a
        # really missing application is reported by StartJobRun right after.
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise _aws_error(f"ListJobRuns {settings.application_id}", exc) from exc
        running = []
    except BotoCoreError as exc:
        raise _aws_error(f"ListJobRuns {settings.application_id}", exc) from exc
    if running:
        raise SubmitError(
            f"{job.name} is already running on application {settings.application_id} "
            f"(job run {', '.join(running)}): two runs would share its checkpoint; cancel it "
            "first (aws emr-serverless cancel-job-run)"
        )


def upload_artifacts(
    s3: S3Client, settings: DeploySettings, manifest: Manifest, build_dir: Path
) -> list[str]:
    """Upload every artifact of the package; returns their URIs."""
    done = []
    for upload in uploads(settings, manifest):
        try:
            with (build_dir / upload.name).open("rb") as body:
                s3.put_object(Bucket=upload.bucket, Key=upload.key, Body=body)
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(f"PutObject {upload.uri}", exc) from exc
        log.info("uploaded %s to %s", upload.name, upload.uri)
        done.append(upload.uri)
    return done


def submit(
    settings: DeploySettings,
    manifest: Manifest,
    job: Job,
    build_dir: Path,
    emr: EMRServerlessClient,
    s3: S3Client,
    arguments: Sequence[str] = (),
    client_token: str | None = None,
) -> SubmitResult:
    """Check the application (and, for a streaming job, that no run of it is active), upload
    the package, start the job run."""
    token = client_token or uuid.uuid4().hex
    request = start_job_run_request(settings, manifest, job, token, arguments)  # before any I/O
    check_application(emr, settings, manifest)
    if job.mode == "STREAMING":
        check_not_running(emr, settings, job)
    uploaded = upload_artifacts(s3, settings, manifest, build_dir)
    try:
        response = emr.start_job_run(**request)
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(f"StartJobRun {job.name}", exc) from exc
    log.info("started %s (%s) as job run %s", job.name, job.mode, response["jobRunId"])
    return SubmitResult(
        job=job.name,
        mode=job.mode,
        application_id=response["applicationId"],
        job_run_id=response["jobRunId"],
        arn=response["arn"],
        entry_point=request["jobDriver"]["sparkSubmit"]["entryPoint"],
        uploaded=uploaded,
    )


def clients(settings: DeploySettings) -> tuple[EMRServerlessClient, S3Client]:
    """boto3 clients for the region (boto3 honours AWS_ENDPOINT_URL itself)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5})
    emr = boto3.client("emr-serverless", region_name=settings.region, config=config)
    s3 = boto3.client("s3", region_name=settings.region, config=config)
    return emr, s3
