"""Fixtures of the deployment tests: a package built from this repository, EMR_* settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.package import Manifest, build_package
from deploy.settings import DeploySettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"  # moto's default account
EMR_ENV = {
    "EMR_APPLICATION_ID": "00fabcdefghij123",
    "EMR_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT_ID}:role/crypto-pulse-job",
    "EMR_ARTIFACTS_BUCKET": "cp-artifacts",
    "EMR_DATA_BUCKET": "cp-data",
    "EMR_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def _clean_deploy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No EMR_* variable of the machine running the tests leaks into them."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("EMR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings() -> DeploySettings:
    return load_settings(
        application_id=EMR_ENV["EMR_APPLICATION_ID"],
        execution_role_arn=EMR_ENV["EMR_EXECUTION_ROLE_ARN"],
        artifacts_bucket=EMR_ENV["EMR_ARTIFACTS_BUCKET"],
        data_bucket=EMR_ENV["EMR_DATA_BUCKET"],
        EMR_REGION=EMR_ENV["EMR_REGION"],
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """The default package (custom image dependencies) of this repository, built once."""
    out = tmp_path_factory.mktemp("package") / "emr"
    return out, build_package(ROOT, out)


@pytest.fixture
def manifest(built: tuple[Path, Manifest]) -> Manifest:
    return built[1]
