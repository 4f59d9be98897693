"""`make package`: the entry scripts, the code zip (importable and complete), the dependency
list without pyspark, the image context; and the archive mode's steps without a network."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from deploy.emr import job_environment
from deploy.errors import PackageError
from deploy.jobs import JOBS
from deploy.package import (
    CODE_ZIP,
    DEPS_ARCHIVE,
    DOCKERFILE,
    Manifest,
    build_package,
    load_manifest,
    platform_tags,
    read_requirements,
    requirement_name,
    without_provided,
    write_venv,
)
from deploy.settings import DeploySettings
from tests.deploy.conftest import ROOT

FIRST_PARTY = {"spark_jobs", "producer", "deploy", "devstack", "tests", "bench"}


def test_the_package_holds_scripts_code_and_dependencies(built: tuple[Path, Manifest]) -> None:
    out, manifest = built
    present = [name for name, job in JOBS.items() if (ROOT / job.source).is_file()]
    assert set(manifest.jobs) == set(present)
    assert manifest.missing_jobs == [name for name in JOBS if name not in present]
    for name in present:
        assert (out / "jobs" / f"{name}.py").read_bytes() == (ROOT / JOBS[name].source).read_bytes()
    assert set(manifest.artifacts) == {*(f"jobs/{name}.py" for name in present), CODE_ZIP}
    assert manifest.python_deps == "image"
    assert manifest.python == "3.11"
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["build_id"] == manifest.build_id
    assert on_disk["excluded"] == ["py4j", "pyspark"]
    assert load_manifest(out) == manifest


def test_the_code_zip_has_the_jobs_code_and_config_only(built: tuple[Path, Manifest]) -> None:
    out, _ = built
    names = zipfile.ZipFile(out / CODE_ZIP).namelist()
    assert "spark_jobs/common/runner.py" in names
    assert "spark_jobs/detectors/volume_anomaly.py" in names
    assert "producer/exchanges/binance.py" in names  # the batch loader reuses its parser
    assert {"config/pipeline.yaml", "config/features.yaml"} <= set(names)
    assert names == sorted(names)
    assert {name.split("/", 1)[0] for name in names} == {"spark_jobs", "producer", "config"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_build_is_reproducible(tmp_path: Path, built: tuple[Path, Manifest]) -> None:
    out, manifest = built
    again = build_package(ROOT, tmp_path / "emr")
    assert again.build_id == manifest.build_id
    assert (tmp_path / "emr" / CODE_ZIP).read_bytes() == (out / CODE_ZIP).read_bytes()


def test_dependencies_are_the_spark_requirements_without_pyspark(
    built: tuple[Path, Manifest],
) -> None:
    out, manifest = built
    declared = {
        requirement_name(line): line for line in read_requirements(ROOT / "requirements-spark.txt")
    }
    assert "pyspark" in declared
    assert "boto3" in declared  # -r requirements.txt followed
    expected = sorted(line for name, line in declared.items() if name != "pyspark")
    assert sorted(manifest.requirements) == expected
    lines = [
        line
        for line in (out / "requirements-emr.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(lines) == expected
    constraints = (out / "constraints-emr.txt").read_text().splitlines()
    assert not [line for line in constraints if requirement_name(line) in {"pyspark", "py4j"}]
    assert "pyarrow==21.0.0" in constraints


def test_the_image_context_is_the_dockerfile_and_the_pins(built: tuple[Path, Manifest]) -> None:
    out, _ = built
    image = out / "image"
    assert sorted(p.name for p in image.iterdir()) == [
        "Dockerfile",
        "constraints-emr.txt",
        "requirements-emr.txt",
    ]
    assert (image / "Dockerfile").read_text() == DOCKERFILE.read_text()
    assert (image / "requirements-emr.txt").read_text() == (
        out / "requirements-emr.txt"
    ).read_text()


def test_requirement_parsing() -> None:
    assert requirement_name("pyiceberg[glue,pyarrow]==0.12.0") == "pyiceberg"
    assert requirement_name("Typing_Extensions>=4") == "typing-extensions"
    assert without_provided(["pyspark==4.0.1", "b==1", "a==2", "py4j==0.10.9.9", "a==2"]) == [
        "a==2",
        "b==1",
    ]
    with pytest.raises(PackageError, match="conflicting requirements 'a==1' and 'a==2'"):
        without_provided(["a==1", "a==2"])


def test_requirement_files_with_other_options_are_refused(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("--index-url https://example.invalid/simple\nboto3==1\n")
    with pytest.raises(PackageError, match="unsupported option line '--index-url"):
        read_requirements(tmp_path / "r.txt")


# --- What runs on EMR ----------------------------------------------------------------------------


def _imports(tree: ast.Module) -> set[str]:
    """Modules a file imports (absolute), TYPE_CHECKING blocks left out."""
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def reachable_imports(
    archive: zipfile.ZipFile, scripts: Sequence[bytes]
) -> tuple[set[str], set[str]]:
    """(first-party modules, third-party top-level names) reachable from the entry scripts."""
    files = {name: archive.read(name) for name in archive.namelist() if name.endswith(".py")}

    def module_file(module: str) -> str | None:
        path = module.replace(".", "/")
        for candidate in (f"{path}.py", f"{path}/__init__.py"):
            if candidate in files:
                return candidate
        return None

    first, third = set(), set()
    queue = [ast.parse(script) for script in scripts]
    seen: set[str] = set()
    while queue:
        for module in _imports(queue.pop()):
            top = module.split(".")[0]
            if top not in FIRST_PARTY:
                third.add(top)
                continue
            parts = module.split(".")
            for end in range(1, len(parts) + 1):  # packages' __init__ run too
                name = ".".join(parts[:end])
                file = module_file(name)
                if file is None:
                    if end == len(parts) and module_file(".".join(parts[:-1])):
                        continue  # `from package.module import name`: a name, not a module
                    first.add(f"MISSING {name}")
                    continue
                first.add(name)
                if file not in seen:
                    seen.add(file)
                    queue.append(ast.parse(files[file]))
    return first, third


def dependency_closure(requirements: Sequence[str]) -> set[str]:
    """The projects `pip install -r` of these lines brings in (extras and markers honoured),
    read from the installed distributions' metadata."""
    closure: set[str] = set()
    pending = [Requirement(line) for line in requirements]
    while pending:
        requirement = pending.pop()
        name = requirement_name(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra})
                for extra in (requirement.extras or {""})
            )
            if wanted:
                pending.append(dependency)
    return closure


def test_everything_the_jobs_import_is_shipped(built: tuple[Path, Manifest]) -> None:
    """Every first-party module an entry script reaches is in the zip (and none is devstack or
    tests); every third-party one comes from requirements-emr.txt, the EMR runtime or the
    standard library."""
    out, manifest = built
    archive = zipfile.ZipFile(out / CODE_ZIP)
    scripts = [(out / entry).read_bytes() for entry in manifest.jobs.values()]
    first, third = reachable_imports(archive, scripts)
    assert not [name for name in first if name.startswith("MISSING")]
    assert not [name for name in first if name.split(".")[0] in {"devstack", "tests", "deploy"}]
    assert {"spark_jobs.common.runner", "spark_jobs.batch.history", "producer.events"} <= first

    distributions = importlib.metadata.packages_distributions()
    closure = dependency_closure(manifest.requirements)
    unprovided = []
    for top in sorted(third - set(sys.stdlib_module_names) - {"pyspark", "py4j", "__future__"}):
        providers = {requirement_name(d) for d in distributions.get(top, [])}
        if not providers & closure:
            unprovided.append(f"{top} ({', '.join(sorted(providers)) or 'unknown'})")
    assert not unprovided, f"imported on EMR but not in requirements-emr.txt: {unprovided}"


def test_the_zip_works_as_py_files_and_code_archive(
    built: tuple[Path, Manifest], settings: DeploySettings, tmp_path: Path
) -> None:
    """What EMR does with the zip: on the Python path (`spark.submit.pyFiles`) and unpacked as
    ./code (`spark.archives`). The jobs' settings load from the shipped config, the detectors
    are discovered inside the zip."""
    out, _ = built
    zip_path = out / CODE_ZIP
    zipfile.ZipFile(zip_path).extractall(tmp_path / "code")
    program = f"""
import sys
sys.path.insert(0, {str(zip_path)!r})
import spark_jobs
assert spark_jobs.__file__.startswith({str(zip_path)!r}), spark_jobs.__file__
from spark_jobs.common.settings import load_job_settings
from spark_jobs.common.registry import load_registry
settings = load_job_settings()
registry = load_registry("code/config/features.yaml")
print(settings.stream.source, settings.checkpoint("whale_detector"), settings.raw_zone)
print(sorted(registry.classes), registry.by_job("volume_anomaly").module_id)
"""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CRYPTO_PULSE_", "PYICEBERG_")) and key != "PYTHONPATH"
    }
    environ.update(job_environment(settings))
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "aws-kinesis s3://cp-data/checkpoints/whale_detector s3://cp-data/raw"
    assert lines[1] == "['MOD-001', 'MOD-002', 'MOD-003'] MOD-001"


# --- Manifest checks and failures ----------------------------------------------------------------


def test_a_changed_or_missing_package_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "emr"
    with pytest.raises(PackageError, match=r"no package in .*: run `make package` first"):
        load_manifest(out)
    build_package(ROOT, out)
    (out / "jobs" / "whale_detector.py").write_text("# edited after the build\n")
    with pytest.raises(PackageError, match=r"whale_detector\.py is missing or changed"):
        load_manifest(out)


def test_a_folder_that_is_not_a_package_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(PackageError, match="refusing to replace"):
        build_package(ROOT, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


class FakeRunner:
    """Stands in for subprocess.run: records commands, fails at one step or 'packs'."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        joined = " ".join(command)
        if self.fail_on and self.fail_on in joined:
            return subprocess.CompletedProcess(
                command, 1, "", "ERROR: Could not find a version that satisfies venv-pack==0.2.0"
            )
        if "venv-pack" in command[0]:
            Path(command[command.index("--output") + 1]).write_bytes(b"packed environment")
        return subprocess.CompletedProcess(command, 0, "", "")


def test_archive_build_failure_leaves_the_previous_package(tmp_path: Path) -> None:
    out = tmp_path / "emr"
    before = build_package(ROOT, out)
    runner = FakeRunner(fail_on="venv-pack==0.2.0")
    with pytest.raises(PackageError) as caught:
        build_package(ROOT, out, deps="archive", run=runner)
    message = str(caught.value)
    assert "installing venv-pack==0.2.0 from PyPI failed (exit 1)" in message
    assert "Could not find a version" in message
    assert "nothing was changed in the build folder" in message
    assert load_manifest(out) == before  # the previous build, whole
    assert not (out / DEPS_ARCHIVE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emr"]  # no scratch left behind


def test_archive_build_steps(tmp_path: Path) -> None:
    runner = FakeRunner()
    manifest = build_package(ROOT, tmp_path / "emr", deps="archive", run=runner)
    assert manifest.python_deps == "archive"
    assert DEPS_ARCHIVE in manifest.artifacts
    assert (tmp_path / "emr" / DEPS_ARCHIVE).read_bytes() == b"packed environment"
    assert not (tmp_path / "emr" / "image").exists()
    install = next(c for c in runner.commands if "--target" in c)
    assert install[install.index("--platform") + 1] == "manylinux_2_34_x86_64"
    assert install[install.index("--python-version") + 1] == "3.11"
    assert "--only-binary=:all:" in install
    assert install[install.index("--target") + 1].endswith("venv/lib/python3.11/site-packages")
    assert install[install.index("-r") + 1].endswith("requirements-emr.txt")
    assert install.count("--platform") == len(platform_tags("manylinux_2_34_x86_64"))
    assert "manylinux2014_x86_64" in install
    pack = runner.commands[-1]
    assert pack[0].endswith("tools/bin/venv-pack")
    assert pack[pack.index("--prefix") + 1] == install[install.index("--target") + 1].removesuffix(
        "/lib/python3.11/site-packages"
    )


def test_the_archive_venv_points_at_the_workers_python(tmp_path: Path) -> None:
    site = write_venv(tmp_path / "venv", "/usr")
    assert site == tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    bin_dir = tmp_path / "venv" / "bin"
    assert os.readlink(bin_dir / "python3.11") == "/usr/bin/python3.11"
    assert os.readlink(bin_dir / "python") == "python3.11"
    assert "home = /usr/bin\n" in (tmp_path / "venv" / "pyvenv.cfg").read_text()


def test_platform_tags() -> None:
    tags = platform_tags("manylinux_2_34_x86_64")
    assert tags[:2] == ["manylinux_2_34_x86_64", "manylinux_2_33_x86_64"]
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_35_x86_64" not in tags
    arm = platform_tags("manylinux_2_34_aarch64")
    assert "manylinux2014_aarch64" in arm
    assert "manylinux2010_aarch64" not in arm
    with pytest.raises(PackageError, match="expected manylinux_2_<glibc minor>_<arch>"):
        platform_tags("linux_x86_64")
