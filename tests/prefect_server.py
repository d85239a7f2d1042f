"""One real Prefect server for the whole test run, started as soon as a test needs it.

A server on a fresh PREFECT_HOME migrates its database first (about a minute on a small
machine), so conftest starts it when collection shows a test that asks for it, the other
tests run meanwhile, and the tests that use it run last.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# The scheduler and the runner poll every few seconds instead of every minute, so a cron
# schedule fires within a minute of being served.
FAST_POLLS = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
              "PREFECT_RUNNER_POLL_FREQUENCY": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrefectServer:
    """`prefect server start` on 127.0.0.1 with a Prefect home of its own."""

    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="racemine-prefect-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self) -> dict[str, str]:
        """What a client of this server needs in its environment."""
        return {"PREFECT_API_URL": self.api_url, **FAST_POLLS}

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({"PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_LOGGING_LEVEL": "WARNING", **FAST_POLLS})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_healthy(self, seconds: float = 300) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the Prefect server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the Prefect server did not answer within {seconds:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.home, ignore_errors=True)

    def flow_runs(self, flow: str) -> list[dict]:
        """The runs of the flow of that name the server knows, newest first."""
        body = {"flows": {"name": {"any_": [flow]}}, "sort": "EXPECTED_START_TIME_DESC"}
        reply = httpx.post(f"{self.api_url}/flow_runs/filter", json=body, timeout=10)
        reply.raise_for_status()
        return reply.json()
