"""What the figures were measured on: the machine, the software, how busy it was."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = (
    "pyspark",
    "pyarrow",
    "pandas",
    "orjson",
    "boto3",
    "botocore",
    "moto",
    "pyiceberg",
    "aiohttp",
    "websockets",
    "polars",
    "cryptofeed",
)


def _first_match(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line
    except OSError:
        return None
    return None


def _os_name() -> str:
    pretty = _first_match("/etc/os-release", "PRETTY_NAME=")
    name = pretty.split("=", 1)[1].strip('"') if pretty else platform.system()
    return f"{name} (kernel {platform.release()})"


def _ram_gib() -> float | None:
    total = _first_match("/proc/meminfo", "MemTotal")
    if total is None:
        return None
    return round(int(total.split()[0]) / 1024**2, 1)


def java_version() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java:
        return None
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stderr or done.stdout).splitlines()
    return lines[0].strip() if lines else None


def machine() -> dict[str, Any]:
    return {
        "cpu": _first_match("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": _os_name(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "java": java_version(),
    }
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks used so far), for every process we may read."""
    found: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) "
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _descendants(root: int, processes: dict[int, tuple[int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    ours, todo = set(), [root]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo.extend(children.get(pid, []))
    return ours


class ForeignCpu:
    """How much of the machine other processes (not this one nor its children) used between
    `start()` and `share()`: 0.5 is one core of two. Processes that came and went in between
    are not seen, so it is a lower bound."""

    def __init__(self) -> None:
        self._start: dict[int, tuple[int, int]] = {}
        self._at = 0.0

    def start(self) -> ForeignCpu:
        self._start = _processes() if Path("/proc/self/stat").exists() else {}
        self._at = time.monotonic()
        return self

    def share(self) -> float | None:
        if not self._start:
            return None
        end = _processes()
        ours = _descendants(os.getpid(), self._start) | _descendants(os.getpid(), end)
        ticks = sum(
            end[pid][1] - self._start[pid][1]
            for pid in end.keys() & self._start.keys()
            if pid not in ours
        )
        elapsed = time.monotonic() - self._at
        capacity = elapsed * (os.cpu_count() or 1) * os.sysconf("SC_CLK_TCK")
        return round(ticks / capacity, 3) if capacity > 0 else None
