"""Rules of the repository that keep the README true and the architecture honest."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from producer.settings import ProducerSettings, env_name

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

PURE_MODULES = [
    "producer/events.py",
    "producer/symbols.py",
    "producer/gaps.py",
    "producer/batching.py",
    "producer/pacing.py",
    "producer/metrics.py",
    "producer/settings.py",
    "producer/exchanges/base.py",
    "producer/exchanges/binance.py",
    "producer/exchanges/coinbase.py",
]
IO_LIBRARIES = {"boto3", "botocore", "websockets", "aiohttp", "pyiceberg", "socket", "asyncio"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert first_block.strip().splitlines()[1:] == [
        line for line in first_block.strip().splitlines()[1:] if line.startswith("make ")
    ]
    assert "make demo" in first_block
    assert "make test" in first_block


@pytest.mark.parametrize("field", list(ProducerSettings.model_fields))
def test_every_setting_is_documented_in_the_readme(field: str) -> None:
    assert f"| `{env_name(field)}`" in README or f"`{env_name(field)}`," in README


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    documented = set(re.findall(r"^\| `(PRODUCER_[A-Z0-9_]+)`", README, flags=re.MULTILINE))
    assert documented == {env_name(f) for f in ProducerSettings.model_fields} - {
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    }


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_do_no_io(module: str) -> None:
    assert imported_roots(ROOT / module).isdisjoint(IO_LIBRARIES)


@pytest.mark.parametrize("package", ["producer", "spark_jobs"])
def test_production_code_never_imports_devstack(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        assert "devstack" not in imported_roots(path), path
