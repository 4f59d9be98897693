"""The producer image: static checks on the Dockerfile text, and (opt-in) the built image run the
way `docker run` users run it.

The container test (marker `container`: `pytest -m container` runs it alone, `-m "not container"`
leaves it out) needs `podman` on PATH and the image `crypto-pulse-producer` built locally
(`devstack/image.sh`, which also writes the podman configuration these machines need); otherwise
it is skipped and says why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.aws import free_port
from devstack.provision import read_stream
from producer.settings import ProducerSettings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "requirements.txt"
IMAGE = "crypto-pulse-producer"
# Packages that belong to the Spark jobs, never to the producer image.
FORBIDDEN_PACKAGES = {"pyspark", "pyiceberg"}


# --- the Dockerfile, parsed ------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comments and blanks dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may also stand between continuation lines
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    if pending:
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def arguments_of(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions if name == keyword]


def exec_form(arguments: str, what: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        value = None
    message = (
        f"{what} must be exec form (a JSON array of strings) so the process is PID 1 and gets"
        f" SIGTERM; got {arguments!r}"
    )
    assert isinstance(value, list), message
    assert value, message
    assert all(isinstance(v, str) for v in value), message
    return value


def test_parser_joins_continuations_and_skips_comments() -> None:
    text = 'FROM x\n# c\nRUN a \\\n    # inner\n    && b\nCMD ["y"]\n'
    assert parse_dockerfile(text) == [("FROM", "x"), ("RUN", "a && b"), ("CMD", '["y"]')]


def test_image_runs_as_a_non_root_user(instructions: list[tuple[str, str]]) -> None:
    users = arguments_of(final_stage(instructions), "USER")
    assert users, "no USER instruction: the container would run as root"
    user = users[-1].split(":", 1)[0].strip()
    assert user, "empty USER"
    assert user not in {"root", "0"}, f"USER {users[-1]} is root"


def test_entrypoint_and_cmd_run_the_producer_in_exec_form(
    instructions: list[tuple[str, str]],
) -> None:
    stage = final_stage(instructions)
    entrypoints = arguments_of(stage, "ENTRYPOINT")
    cmds = arguments_of(stage, "CMD")
    assert entrypoints or cmds, "no ENTRYPOINT or CMD"
    entrypoint = exec_form(entrypoints[-1], "ENTRYPOINT") if entrypoints else []
    cmd = exec_form(cmds[-1], "CMD") if cmds else []
    command = entrypoint + cmd
    assert command[:3] == ["python3", "-m", "producer"], command
    assert command[3:] == ["run"], f"the default command should be `producer run`: {command}"


def test_healthcheck_probes_healthz_on_the_health_port(
    instructions: list[tuple[str, str]],
) -> None:
    stage = final_stage(instructions)
    checks = arguments_of(stage, "HEALTHCHECK")
    assert checks, "no HEALTHCHECK"
    check = checks[-1]
    assert check.upper() != "NONE", "HEALTHCHECK NONE disables the check"
    options, separator, command = check.partition("CMD ")
    assert separator, f"HEALTHCHECK without CMD: {check!r}"
    probe = " ".join(exec_form(command.strip(), "HEALTHCHECK CMD"))
    assert "/healthz" in probe, probe
    assert "PRODUCER_HEALTH_PORT" in probe, "the probe must follow the configured health port"
    assert re.search(r"--timeout=\d+s", options), "a HEALTHCHECK without --timeout waits 30 s"

    # The image's default health port: set in ENV, exposed, and the producer's own default.
    env = " ".join(arguments_of(stage, "ENV"))
    match = re.search(r"\bPRODUCER_HEALTH_PORT=(\d+)", env)
    assert match, "ENV PRODUCER_HEALTH_PORT is not set"
    port = match.group(1)
    default = ProducerSettings.model_fields["health_port"].default
    assert int(port) == default, f"ENV PRODUCER_HEALTH_PORT={port}; the producer: {default}"
    exposed = " ".join(arguments_of(stage, "EXPOSE")).split()
    assert port in exposed or f"{port}/tcp" in exposed, f"port {port} is not EXPOSEd"


def test_base_image_comes_from_arg_base_image(instructions: list[tuple[str, str]]) -> None:
    first_from = next(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    args = dict(
        arguments.split("=", 1) if "=" in arguments else (arguments, "")
        for keyword, arguments in instructions[:first_from]
        if keyword == "ARG"
    )
    assert "BASE_IMAGE" in args, "ARG BASE_IMAGE must come before FROM (global scope)"
    assert re.fullmatch(r"python:3\.11[-\w.]*", args["BASE_IMAGE"]), (
        f"the default base should be a Python 3.11 image, got {args['BASE_IMAGE']!r}"
    )
    for arguments in arguments_of(instructions, "FROM"):
        image = next(part for part in arguments.split() if not part.startswith("--"))
        assert image in {"${BASE_IMAGE}", "$BASE_IMAGE"}, f"FROM {arguments} ignores BASE_IMAGE"


def requirement_names(text: str) -> set[str]:
    """Normalised project names of a requirements file (PEP 503)."""
    names = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        assert name, f"unparsed requirement {line!r}"
        names.add(re.sub(r"[-_.]+", "-", name.group(0)).lower())
    return names


def test_requirement_names_are_normalised() -> None:
    text = "# x\nPySpark[sql]==3.5  # no\npy_iceberg>=1\n\n-c constraints.txt\n"
    assert requirement_names(text) == {"pyspark", "py-iceberg"}


def test_image_installs_requirements_txt_without_spark(
    instructions: list[tuple[str, str]],
) -> None:
    stage = final_stage(instructions)
    copies = " ".join(arguments_of(stage, "COPY"))
    runs = " ".join(arguments_of(stage, "RUN"))
    assert "requirements.txt" in copies, "the image should install requirements.txt"
    installs = re.findall(r"pip install ([^;&|]*)", runs)
    assert installs, "no pip install in the image"
    for install in installs:
        assert re.search(r"-r \S*requirements\.txt\b", install), install
        extra = [
            word
            for word in install.split()
            if not word.startswith("-") and not word.endswith("requirements.txt")
        ]
        assert extra in ([], ["/tmp/build"]), f"pip installs more than requirements.txt: {install}"
    names = requirement_names(REQUIREMENTS.read_text(encoding="utf-8"))
    assert names, "requirements.txt is empty"
    assert not names & FORBIDDEN_PACKAGES, f"requirements.txt has {names & FORBIDDEN_PACKAGES}"
    assert not any(package in runs.lower() for package in FORBIDDEN_PACKAGES)


# --- the built image, run (opt-in) -------------------------------------------------------------


def podman_command() -> list[str]:
    # crun cannot run containers on these machines (see shared/CONTAINERS.md); runc can.
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    return ["podman", *runtime, "--cgroup-manager", "cgroupfs"]


def container_skip_reason() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not on PATH (install it and build the image: devstack/image.sh)"
    exists = subprocess.run(
        [*podman_command(), "image", "exists", IMAGE], capture_output=True, timeout=60
    )
    if exists.returncode != 0:
        return f"image {IMAGE} is not built locally (devstack/image.sh builds it)"
    return None


SKIP_REASON = container_skip_reason()

try:  # the exchange simulator, when present; otherwise exchanges on closed local ports
    from devstack.simulator import Scenario, SimulatorThread
except ImportError:  # pragma: no cover - depends on the checkout
    SimulatorThread = None  # type: ignore[assignment,misc]


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*podman_command(), *args], capture_output=True, text=True, timeout=timeout
    )


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def wait_for(
    url: str, done: Callable[[int, Any], bool], container: str, timeout_s: float = 60.0
) -> tuple[int, Any]:
    """Poll `url` until `done(status, body)`; fails early (with the logs) if the container exits."""
    deadline = time.monotonic() + timeout_s
    last: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        try:
            last = http_get(url)
            if done(*last):
                return last
        except OSError:
            pass
        state = podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if state != "true":
            logs = podman("logs", container)
            pytest.fail(f"container stopped early:\n{logs.stdout}{logs.stderr}"[-4000:])
        time.sleep(0.25)
    pytest.fail(f"{url} did not answer as expected in {timeout_s} s (last: {last})")


@pytest.mark.container
@pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")
def test_container_serves_health_and_exits_zero_on_sigterm(
    aws_env: dict[str, str], kinesis: Any, stream_name: str
) -> None:
    port = free_port()
    name = f"crypto-pulse-test-{uuid.uuid4().hex[:8]}"
    sim = SimulatorThread(Scenario(), speed=20.0) if SimulatorThread is not None else None
    if sim is not None:
        sim.start()
        urls = {
            "PRODUCER_BINANCE_WS_URL": sim.binance_ws_url,
            "PRODUCER_BINANCE_REST_URL": sim.binance_rest_url,
            "PRODUCER_COINBASE_WS_URL": sim.coinbase_ws_url,
            "PRODUCER_COINBASE_REST_URL": sim.coinbase_rest_url,
        }
    else:  # never the real exchanges: a closed local port (the producer keeps reconnecting)
        closed = free_port()
        urls = {
            f"PRODUCER_{exchange}_{kind}_URL": f"{scheme}://127.0.0.1:{closed}"
            for exchange in ("BINANCE", "COINBASE")
            for kind, scheme in (("WS", "ws"), ("REST", "http"))
        }
    env = {
        **aws_env,
        **urls,
        "PRODUCER_STREAM_NAME": stream_name,
        "PRODUCER_HEALTH_HOST": "127.0.0.1",
        "PRODUCER_HEALTH_PORT": str(port),
    }
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    try:
        started = podman("run", "-d", "--name", name, "--network", "host", *env_args, IMAGE)
        assert started.returncode == 0, started.stderr

        assert wait_for(
            f"http://127.0.0.1:{port}/healthz", lambda status, _: status == 200, name
        ) == (200, {"status": "ok"})
        uid = podman("exec", name, "id", "-u")
        assert uid.returncode == 0, uid.stderr
        assert uid.stdout.strip() != "0", "the producer runs as root"
        # The image's own HEALTHCHECK, run inside the container (needs a docker-format image).
        check = podman("healthcheck", "run", name)
        assert check.returncode == 0, check.stdout + check.stderr
        published = 0
        if sim is not None:  # trades flow from the simulator into the local stream
            _, metrics = wait_for(
                f"http://127.0.0.1:{port}/metrics",
                lambda status, body: status == 200 and body["published"] > 0,
                name,
            )
            published = metrics["published"]

        sent_at = time.monotonic()
        stopped = podman("stop", "-t", "20", name, timeout=60)
        took_s = time.monotonic() - sent_at
        assert stopped.returncode == 0, stopped.stderr
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman("logs", name)
    finally:
        podman("rm", "-f", name)
        if sim is not None:
            sim.stop()

    assert exit_code == "0", f"exit code {exit_code}:\n{logs.stderr[-4000:]}"
    assert took_s < 15, f"SIGTERM to exit took {took_s:.1f} s (podman stop -t 20)"
    assert '"producer stopped"' in logs.stdout + logs.stderr
    if sim is not None:
        assert len(read_stream(kinesis, stream_name)) >= published > 0
