"""The local AWS endpoint: moto in server mode on 127.0.0.1, reached over real HTTP.

    python -m devstack.aws [--port 0]    # prints {"endpoint_url": ...}; runs until SIGTERM/SIGINT

Components reach it through `AWS_ENDPOINT_URL` (boto3 honours it natively).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

# Credentials for the local endpoint: moto accepts any, boto3 insists on some.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalAws:
    """A moto server in a child process (its own interpreter: no GIL shared with the code under
    test). Use as a context manager; `env()` gives the variables a client needs."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def start(self, timeout_s: float = 30.0) -> LocalAws:
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_server", "-H", self.host, "-p", str(self.port)],
            stdout=log,
            stderr=log,
            env={**os.environ, **LOCAL_CREDENTIALS},
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} in {timeout_s} s")

    def reset(self) -> None:
        """Forget every resource (between tests that need a clean account)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.aws", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with LocalAws(args.host, args.port) as aws:
        print(json.dumps({"endpoint_url": aws.endpoint_url}), flush=True)
        while not stopping:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
