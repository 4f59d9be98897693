"""The Spark jobs' settings: `config/pipeline.yaml` with environment overrides, parsed once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "pipeline.yaml"
ENV_PREFIX = "CRYPTO_PULSE_"
KNOWN_EXCHANGES = ("binance", "coinbase")


class SettingsError(Exception):
    """Invalid job settings; the message names the setting (as its environment variable)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamSettings(_Section):
    name: str = Field(default="crypto-pulse-trades", min_length=1)
    region: str = "us-east-1"
    source: Literal["python", "aws-kinesis"] = "python"
    starting_position: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"] = "TRIM_HORIZON"
    starting_timestamp: str | None = None  # ISO 8601, with AT_TIMESTAMP
    max_records_per_batch: int = Field(default=100_000, ge=1)
    endpoint_url: str | None = None  # default: AWS_ENDPOINT_URL


class SparkSettings(_Section):
    # "launcher": leave the master to spark-submit (EMR); a master URL for local runs.
    master: str = "local[2]"
    shuffle_partitions: int = Field(default=2, ge=1)
    state_store: Literal["rocksdb", "hdfs"] = "rocksdb"
    conf: dict[str, str] = Field(default_factory=dict)


class StreamingSettings(_Section):
    watermark_s: int = Field(default=120, ge=0)
    trigger_interval_s: float = Field(default=5.0, ge=0)
    checkpoint_root: str = "var/checkpoints"


class QualitySettings(_Section):
    max_age_s: int = Field(default=300, gt=0)
    quote_volume_tolerance: float = Field(default=0.001, gt=0)


class TableSettings(_Section):
    catalog: str = "crypto_pulse"
    namespace: str = "crypto_pulse"
    warehouse: str = "var/warehouse"


class AlertSettings(_Section):
    dynamodb_table: str = "crypto-pulse-alerts"
    ttl_days: int = Field(default=30, ge=1)


class MetricSettings(_Section):
    cloudwatch: bool = True
    quality_namespace: str = "CryptoPulse/Quality"
    streaming_namespace: str = "CryptoPulse/Streaming"


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    symbols: dict[str, dict[str, str]]
    exchanges: tuple[str, ...] = KNOWN_EXCHANGES
    stream: StreamSettings = StreamSettings()
    spark: SparkSettings = SparkSettings()
    streaming: StreamingSettings = StreamingSettings()
    raw_zone: str = "var/raw"
    quality: QualitySettings = QualitySettings()
    tables: TableSettings = TableSettings()
    alerts: AlertSettings = AlertSettings()
    metrics: MetricSettings = MetricSettings()

    @field_validator("symbols")
    @classmethod
    def _canonical(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        if not value:
            raise ValueError("at least one symbol is required")
        for symbol, products in value.items():
            base, sep, quote = symbol.partition("-")
            if not (sep and base and quote and symbol == symbol.upper()):
                raise ValueError(f"symbol {symbol!r} is not canonical BASE-QUOTE upper case")
            unknown = sorted(set(products) - set(KNOWN_EXCHANGES))
            if unknown:
                raise ValueError(f"symbol {symbol!r} names unknown exchange(s) {unknown}")
        return value

    @field_validator("exchanges")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(KNOWN_EXCHANGES))
        if unknown or not value:
            raise ValueError(f"unknown exchange(s) {unknown}; known: {list(KNOWN_EXCHANGES)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(f"{ENV_PREFIX}CONFIG", str(DEFAULT_CONFIG))
        # Precedence: arguments, then the environment, then the YAML file.
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls, path)

    def checkpoint(self, job: str) -> str:
        """The job's own checkpoint location."""
        return f"{self.streaming.checkpoint_root.rstrip('/')}/{job}"

    def resolve_path(self, path: str) -> str:
        """Relative local paths are relative to the repository, URIs are left alone."""
        if "://" in path or os.path.isabs(path):
            return path
        return str(REPO_ROOT / path)


def load_job_settings(**overrides: Any) -> JobSettings:
    config = os.environ.get(f"{ENV_PREFIX}CONFIG", str(DEFAULT_CONFIG))
    if not Path(config).is_file():
        raise SettingsError(f"{ENV_PREFIX}CONFIG: no such file {config!r}")
    try:
        return JobSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ENV_PREFIX + "__".join(str(p).upper() for p in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message} (got {error.get('input')!r})")
        raise SettingsError("invalid job settings: " + "; ".join(problems)) from None
