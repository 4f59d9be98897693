"""The deployer's settings: the EMR Serverless application and the AWS resources a job run uses,
from the environment (`EMR_*`), parsed once in main."""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.errors import DeploySettingsError

ENV_PREFIX = "EMR_"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]+")


class DeploySettings(BaseSettings):
    """Every setting has an environment variable `EMR_<NAME>` (the region also reads
    AWS_REGION)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    application_id: str = Field(pattern=r"^[0-9a-z]{1,64}$")
    execution_role_arn: str = Field(
        pattern=r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$",
        description="the job runtime role (deploy/iam/job-execution-policy.json)",
    )
    artifacts_bucket: str
    data_bucket: str
    region: str = Field(
        validation_alias=AliasChoices("EMR_REGION", "AWS_REGION"),
        pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$",
    )
    log_group: str = Field(
        default="/aws/emr-serverless/crypto-pulse", pattern=r"^[.\-_/#A-Za-z0-9]{1,512}$"
    )
    artifacts_prefix: str = "crypto-pulse/artifacts"
    logs_prefix: str = "crypto-pulse/logs"
    # Unset: the stream named in config/pipeline.yaml.
    stream_name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    # The pyiceberg catalog the jobs load (config/pipeline.yaml `tables.catalog`), made a Glue one.
    iceberg_catalog: str = Field(default="crypto_pulse", pattern=r"^[a-z0-9_]+$")
    # The interpreter of the custom image (deploy/emr-image.Dockerfile installs it).
    image_python: str = Field(default="/usr/bin/python3.11", pattern=r"^/\S+$")
    # The application's release must start with this: emr-spark-8.0.x runs Spark 4.0 (SPEC §3).
    release_label_prefix: str = Field(default="emr-spark-8.0", min_length=1)
    max_failed_attempts_per_hour: int = Field(default=5, ge=1, le=1000)
    batch_timeout_minutes: int = Field(default=720, ge=5, le=10080)
    # Extra Spark properties (JSON object), e.g. executor sizes; applied last.
    spark_conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("artifacts_bucket", "data_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.fullmatch(value) or ".." in value:
            raise ValueError("not an S3 bucket name (3-63 of a-z 0-9 . -: a name, not a URI)")
        return value

    @field_validator("artifacts_prefix", "logs_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if not value or not _PREFIX.fullmatch(value):
            raise ValueError("not an S3 key prefix (e.g. crypto-pulse/artifacts)")
        return value

    @field_validator("spark_conf")
    @classmethod
    def _no_whitespace(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key.startswith("spark.") or re.search(r"\s", key + item):
                raise ValueError(
                    f"{key}={item!r}: keys start with 'spark.' and nothing holds whitespace"
                )
        return value

    def masked(self) -> dict[str, Any]:
        """The settings as logged at start (none of them is a secret)."""
        return self.model_dump()


def env_name(field: str) -> str:
    """The environment variable(s) that set `field`."""
    if field == "region":
        return "EMR_REGION (or AWS_REGION)"
    if field.startswith(ENV_PREFIX):  # an alias
        return env_name("region") if field == "EMR_REGION" else field
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> DeploySettings:
    """Parse the environment; invalid or missing values raise DeploySettingsError naming the
    variable."""
    try:
        return DeploySettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = env_name(str(error["loc"][0])) if error["loc"] else "EMR_*"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "missing":
                problems.append(f"{name}: required, not set")
            else:
                problems.append(f"{name}: {message} (got {error.get('input')!r})")
        raise DeploySettingsError("invalid deploy settings: " + "; ".join(problems)) from None
