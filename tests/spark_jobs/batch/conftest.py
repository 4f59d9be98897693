"""Batch job fixtures: a fresh warehouse and raw zone per test, and no pyiceberg configuration
from the machine (the local SQLite catalog is the one under test)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_jobs.common.settings import JobSettings, TableSettings


@pytest.fixture(autouse=True)
def no_pyiceberg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.upper().startswith("PYICEBERG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PYICEBERG_HOME", str(home))
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def settings(job_settings: JobSettings, tmp_path: Path) -> JobSettings:
    tables = TableSettings(
        catalog="batch", namespace="crypto_pulse", warehouse=str(tmp_path / "warehouse")
    )
    return job_settings.model_copy(update={"tables": tables, "raw_zone": str(tmp_path / "raw")})


@pytest.fixture
def settings_env(settings: JobSettings, monkeypatch: pytest.MonkeyPatch) -> JobSettings:
    """The same settings for a job's `main`, through the environment (and the shared session's
    Spark settings, so `build_session` leaves it as it is)."""
    values = {
        "TABLES__CATALOG": settings.tables.catalog,
        "TABLES__NAMESPACE": settings.tables.namespace,
        "TABLES__WAREHOUSE": settings.tables.warehouse,
        "RAW_ZONE": settings.raw_zone,
        "SPARK__MASTER": settings.spark.master,
        "SPARK__SHUFFLE_PARTITIONS": str(settings.spark.shuffle_partitions),
        "SPARK__STATE_STORE": settings.spark.state_store,
    }
    for key, value in values.items():
        monkeypatch.setenv(f"CRYPTO_PULSE_{key}", value)
    return settings
