"""`make package`: what EMR Serverless needs, built into `build/emr/` (SPEC §9).

    build/emr/
      manifest.json            what was built: build id, jobs, artifacts with sha256, deps mode
      jobs/<job>.py            the entry scripts (`entryPoint`)
      crypto_pulse.zip         spark_jobs/ + producer/ + config/: `spark.submit.pyFiles`, and
                               `spark.archives` as `#code` (config/*.yaml as files)
      requirements-emr.txt     the jobs' Python dependencies, pinned, without pyspark (EMR has it)
      constraints-emr.txt      every transitive pin (constraints.txt without pyspark/py4j)
      image/                   --deps image (default): the custom image's build context
      pyspark_deps.tar.gz      --deps archive: a venv-pack archive (`spark.archives` #environment)

The image context and the zip are built offline. The archive needs PyPI (venv-pack and the wheels
for the EMR platform); without it the build fails naming what is missing and leaves the previous
build as it was. Everything is written to a scratch folder and moved into place at the end, so a
failed build never leaves half a package.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deploy.errors import PackageError
from deploy.jobs import JOBS, Job

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "emr"
DOCKERFILE = REPO_ROOT / "deploy" / "emr-image.Dockerfile"

MANIFEST = "manifest.json"
CODE_ZIP = "crypto_pulse.zip"
DEPS_ARCHIVE = "pyspark_deps.tar.gz"
EMR_REQUIREMENTS = "requirements-emr.txt"
EMR_CONSTRAINTS = "constraints-emr.txt"
IMAGE_DIR = "image"
# The jobs' code: spark_jobs/, the producer's pure parsers the batch loader reuses, config/.
CODE_DIRS = ("spark_jobs", "producer", "config")
MANIFEST_FORMAT = 1

# What the EMR runtime provides: Spark 4.0.x with its own pyspark and py4j on the driver's path.
PROVIDED_BY_EMR = frozenset({"pyspark", "py4j"})
# The interpreter the dependencies are built for; the workers must run the same minor version.
PYTHON_VERSION = (3, 11)
VENV_PACK = "venv-pack==0.2.0"
# The archive's wheels: CPython 3.11 on Amazon Linux 2023 (glibc 2.34), so any manylinux tag up to
# this one (`platform_tags`); arm64 applications need manylinux_2_34_aarch64.
DEFAULT_PLATFORM = "manylinux_2_34_x86_64"
# PEP 600 names of the legacy manylinux tags (pip compares tags as strings).
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
# venv-pack rewrites the archive's `bin/python` to <prefix>/bin/python3.11: the interpreter must
# exist at that path on the workers (see deploy/README.md).
DEFAULT_PYTHON_PREFIX = "/usr"

DepsMode = Literal["image", "archive"]
Runner = Callable[..., "subprocess.CompletedProcess[str]"]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same sources give the same zip and build id
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


# --- Requirements (pure) -------------------------------------------------------------------------


def requirement_name(line: str) -> str:
    """The normalized project name of a requirement line (PEP 503), e.g. `pyiceberg`."""
    match = _NAME.match(line)
    if match is None:
        raise PackageError(f"not a requirement line: {line!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file, `-r` includes followed, comments dropped.

    Only plain requirements and `-r` are accepted: an index URL or an editable install would
    mean something else on the build machine than on the image."""
    lines: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            lines.extend(read_requirements(path.parent / line.split(maxsplit=1)[1]))
        elif line.startswith("-"):
            raise PackageError(f"{path}: unsupported option line {line!r}")
        else:
            lines.append(line)
    return lines


def platform_tags(platform: str) -> list[str]:
    """Every wheel platform tag a machine of `platform` runs, newest first: pip's `--platform`
    takes tags literally, so `manylinux_2_34_x86_64` alone would refuse a manylinux2014 wheel."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(x86_64|aarch64)", platform)
    if match is None:
        raise PackageError(f"platform {platform!r}: expected manylinux_2_<glibc minor>_<arch>")
    newest, arch = int(match.group(1)), match.group(2)
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        legacy = _LEGACY_MANYLINUX.get(minor)
        if legacy and (arch == "x86_64" or minor == 17):
            tags.append(f"{legacy}_{arch}")
    return tags


def without_provided(lines: Iterable[str]) -> list[str]:
    """`lines` minus what EMR provides (pyspark, py4j), duplicates removed, sorted by name."""
    chosen: dict[str, str] = {}
    for line in lines:
        name = requirement_name(line)
        if name in PROVIDED_BY_EMR:
            continue
        if name in chosen and chosen[name] != line:
            raise PackageError(f"conflicting requirements {chosen[name]!r} and {line!r}")
        chosen[name] = line
    return [chosen[name] for name in sorted(chosen)]


# --- Files (pure helpers over the file system) ---------------------------------------------------


def code_files(root: Path, dirs: Sequence[str] = CODE_DIRS) -> list[str]:
    """The files of the code package, relative to `root`, sorted (no caches, no bytecode)."""
    found = []
    for top in dirs:
        for path in (root / top).rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
                found.append(relative.as_posix())
    if not found:
        raise PackageError(f"no files under {', '.join(dirs)} in {root}")
    return sorted(found)


def write_zip(path: Path, root: Path, files: Iterable[str]) -> None:
    """A reproducible zip: sorted entries, fixed timestamps and modes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / name).read_bytes())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- Manifest ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What `build/emr/` holds. `artifacts` are uploaded to S3 under the build id."""

    build_id: str
    python_deps: DepsMode
    jobs: dict[str, str]  # job -> its entry script artifact
    artifacts: dict[str, Artifact]
    requirements: list[str]
    missing_jobs: list[str] = field(default_factory=list)
    python: str = ".".join(map(str, PYTHON_VERSION))

    @property
    def code_zip(self) -> str:
        return CODE_ZIP

    @property
    def deps_archive(self) -> str | None:
        return DEPS_ARCHIVE if self.python_deps == "archive" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "build_id": self.build_id,
            "python": self.python,
            "python_deps": self.python_deps,
            "jobs": self.jobs,
            "missing_jobs": self.missing_jobs,
            "artifacts": {
                name: {"sha256": item.sha256, "bytes": item.bytes}
                for name, item in sorted(self.artifacts.items())
            },
            "requirements": self.requirements,
            "excluded": sorted(PROVIDED_BY_EMR),
        }

    @staticmethod
    def from_json(value: dict[str, Any]) -> Manifest:
        if value.get("format") != MANIFEST_FORMAT:
            raise PackageError(f"unknown manifest format {value.get('format')!r}")
        return Manifest(
            build_id=value["build_id"],
            python_deps=value["python_deps"],
            jobs=dict(value["jobs"]),
            artifacts={
                name: Artifact(item["sha256"], item["bytes"])
                for name, item in value["artifacts"].items()
            },
            requirements=list(value["requirements"]),
            missing_jobs=list(value.get("missing_jobs", [])),
            python=value["python"],
        )


def build_id(artifacts: dict[str, Artifact]) -> str:
    """Content address of the artifacts: the same package always uploads to the same place."""
    digest = hashlib.sha256()
    for name in sorted(artifacts):
        digest.update(f"{name}\0{artifacts[name].sha256}\n".encode())
    return digest.hexdigest()[:12]


def load_manifest(build_dir: Path = DEFAULT_BUILD_DIR) -> Manifest:
    """The package in `build_dir`, checked: every artifact present with its recorded hash."""
    path = build_dir / MANIFEST
    if not path.is_file():
        raise PackageError(f"no package in {build_dir}: run `make package` first")
    try:
        manifest = Manifest.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageError(f"{path} is not a package manifest ({exc}): run `make package`") from exc
    for name, artifact in manifest.artifacts.items():
        file = build_dir / name
        if not file.is_file() or sha256_file(file) != artifact.sha256:
            raise PackageError(
                f"{file} is missing or changed since the package was built: run `make package`"
            )
    return manifest


# --- The dependency archive (venv-pack) ----------------------------------------------------------


def _run(step: str, command: Sequence[str | Path], run: Runner) -> None:
    try:
        result = run([str(part) for part in command], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise PackageError(f"dependency archive: {step} failed: {exc}") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()[-8:]
        raise PackageError(
            f"dependency archive: {step} failed (exit {result.returncode}):\n  "
            + "\n  ".join(detail)
            + "\nThe archive needs Python 3.11 and PyPI (venv-pack and the wheels for the EMR "
            "platform). Without them build the default package (`make package`, custom image, "
            "see deploy/README.md); nothing was changed in the build folder."
        )


def write_venv(venv: Path, python_prefix: str) -> Path:
    """An empty venv whose interpreter is `<python_prefix>/bin/python3.11` (need not exist here);
    returns its site-packages. Written by hand: `python -m venv` would link this machine's
    interpreter, and venv-pack 0.2.0's `--python-prefix` rewrites a `python3.11` link wrongly
    (`.../python3.113.11`)."""
    version = ".".join(map(str, PYTHON_VERSION))
    interpreter = f"{python_prefix.rstrip('/')}/bin/python{version}"
    site = venv / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / f"python{version}").symlink_to(interpreter)
    for alias in ("python", "python3"):
        (venv / "bin" / alias).symlink_to(f"python{version}")
    (venv / "pyvenv.cfg").write_text(
        f"home = {python_prefix.rstrip('/')}/bin\n"
        "include-system-site-packages = false\n"
        f"version = {version}\n"
        f"executable = {interpreter}\n"
    )
    return site


def build_deps_archive(
    scratch: Path,
    requirements: Path,
    constraints: Path,
    output: Path,
    platform: str = DEFAULT_PLATFORM,
    python_prefix: str = DEFAULT_PYTHON_PREFIX,
    run: Runner = subprocess.run,
) -> None:
    """A venv-pack archive of the dependencies, built for `platform` (not for this machine).

    pip installs the wheels for CPython 3.11 on `platform` (binary only: nothing is compiled
    against this machine's libraries) into a venv whose `bin/python` is
    `<python_prefix>/bin/python3.11`, and venv-pack packs it (relocatable scripts, no
    interpreter: the workers must have that one)."""
    if sys.version_info[:2] != PYTHON_VERSION:
        raise PackageError(
            f"dependency archive: the build runs Python {sys.version.split()[0]}; the wheels' "
            f"bytecode must be made by Python {'.'.join(map(str, PYTHON_VERSION))}, the jobs' one"
        )
    tools, venv = scratch / "tools", scratch / "venv"
    version = ".".join(map(str, PYTHON_VERSION))
    pip = ["--disable-pip-version-check", "--quiet", "--retries", "1", "--timeout", "30"]
    _run("creating the tools venv", [sys.executable, "-m", "venv", tools], run)
    _run(
        f"installing {VENV_PACK} from PyPI",
        [tools / "bin" / "python", "-m", "pip", "install", *pip, VENV_PACK],
        run,
    )
    site = write_venv(venv, python_prefix)
    _run(
        f"installing the dependencies for {platform} from PyPI",
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            *pip,
            "--only-binary=:all:",
            *(part for tag in platform_tags(platform) for part in ("--platform", tag)),
            "--python-version",
            version,
            "--implementation",
            "cp",
            "--target",
            site,
            "-r",
            requirements,
            "-c",
            constraints,
        ],
        run,
    )
    leaked = sorted(name for name in PROVIDED_BY_EMR if (site / name).exists())
    if leaked:
        raise PackageError(f"dependency archive: {leaked} got installed; EMR provides them")
    _run(
        "packing the environment with venv-pack",
        [
            tools / "bin" / "venv-pack",
            "--prefix",
            venv,
            "--output",
            output,
            "--format",
            "tar.gz",
            "--quiet",
        ],
        run,
    )


# --- The package ---------------------------------------------------------------------------------


def build_package(
    root: Path = REPO_ROOT,
    out: Path = DEFAULT_BUILD_DIR,
    deps: DepsMode = "image",
    jobs: Sequence[Job] = tuple(JOBS.values()),
    platform: str = DEFAULT_PLATFORM,
    python_prefix: str = DEFAULT_PYTHON_PREFIX,
    run: Runner = subprocess.run,
) -> Manifest:
    """Build the package into `out` (replacing what was there only once all of it is built)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".emr-build-", dir=out.parent) as scratch_name:
        scratch = Path(scratch_name)
        stage = scratch / "package"
        (stage / "jobs").mkdir(parents=True)

        entries: dict[str, str] = {}
        missing: list[str] = []
        for job in jobs:
            source = root / job.source
            if source.is_file():
                shutil.copyfile(source, stage / job.artifact)
                entries[job.name] = job.artifact
            else:
                missing.append(job.name)
        if not entries:
            raise PackageError(f"no job entry scripts found under {root / 'spark_jobs'}")

        write_zip(stage / CODE_ZIP, root, code_files(root))

        requirements = without_provided(read_requirements(root / "requirements-spark.txt"))
        constraints = [
            line
            for line in read_requirements(root / "constraints.txt")
            if requirement_name(line) not in PROVIDED_BY_EMR
        ]
        (stage / EMR_REQUIREMENTS).write_text(
            "# The Spark jobs' dependencies on EMR Serverless (generated by `make package` from\n"
            "# requirements-spark.txt; pyspark and py4j come with the EMR runtime).\n"
            + "".join(f"{line}\n" for line in requirements)
        )
        (stage / EMR_CONSTRAINTS).write_text("".join(f"{line}\n" for line in constraints))

        uploaded = [*entries.values(), CODE_ZIP]
        if deps == "image":
            image = stage / IMAGE_DIR
            image.mkdir()
            shutil.copyfile(DOCKERFILE, image / "Dockerfile")
            shutil.copyfile(stage / EMR_REQUIREMENTS, image / EMR_REQUIREMENTS)
            shutil.copyfile(stage / EMR_CONSTRAINTS, image / EMR_CONSTRAINTS)
        else:
            build_deps_archive(
                scratch / "archive",
                stage / EMR_REQUIREMENTS,
                stage / EMR_CONSTRAINTS,
                stage / DEPS_ARCHIVE,
                platform,
                python_prefix,
                run,
            )
            uploaded.append(DEPS_ARCHIVE)

        artifacts = {
            name: Artifact(sha256_file(stage / name), (stage / name).stat().st_size)
            for name in uploaded
        }
        manifest = Manifest(
            build_id=build_id(artifacts),
            python_deps=deps,
            jobs=entries,
            artifacts=artifacts,
            requirements=requirements,
            missing_jobs=missing,
        )
        (stage / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")

        if out.exists():
            if not (out / MANIFEST).is_file() and any(out.iterdir()):
                raise PackageError(f"refusing to replace {out}: it is not a package folder")
            shutil.rmtree(out)
        stage.rename(out)
    return manifest
