"""One real Prefect server for the whole test run, started as soon as a test needs it.

A server on a fresh PREFECT_HOME migrates its database first (about a minute on a small
machine), so conftest starts it when collection shows a test that asks for it, the other
tests run meanwhile, and the tests that use it run last.

When pytest-xdist runs the tests in several worker processes, the first worker whose
collection needs the server starts it and describes it in a file of the run's shared
folder (under a lock); the others use that server, and the controlling process stops it
when the run ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from filelock import FileLock

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
    pid: int | None = None  # of a server another worker process started

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
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._alive():
                raise AssertionError("the Prefect server exited before it answered")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the Prefect server did not answer within {seconds:.0f} s")

    def _alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        elif self.pid is not None and self._alive():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._alive():
                os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)

    @classmethod
    def shared(cls, folder: Path) -> PrefectServer:
        """The run's one server: started by the first worker that asks, described in
        folder/prefect.json for the others."""
        described = folder / "prefect.json"
        with FileLock(str(folder / "prefect.lock")):
            if described.exists():
                known = json.loads(described.read_text())
                return cls(home=Path(known["home"]), port=known["port"], pid=known["pid"])
            server = cls()
            server.start()
            assert server.process is not None
            described.write_text(json.dumps({"home": str(server.home), "port": server.port,
                                             "pid": server.process.pid}))
            return server

    @classmethod
    def stop_shared(cls, folder: Path) -> None:
        """Stop the server described in folder, if a worker started one."""
        described = folder / "prefect.json"
        if described.exists():
            known = json.loads(described.read_text())
            cls(home=Path(known["home"]), port=known["port"], pid=known["pid"]).stop()

    def flow_runs(self, flow: str, warehouse: Path | None = None) -> list[dict]:
        """The runs of the flow of that name the server knows, newest first; with a
        warehouse, only those that wrote to it (tests that share the server may run at
        the same time)."""
        body = {"flows": {"name": {"any_": [flow]}}, "sort": "EXPECTED_START_TIME_DESC"}
        reply = httpx.post(f"{self.api_url}/flow_runs/filter", json=body, timeout=10)
        reply.raise_for_status()
        return [r for r in reply.json() if warehouse is None
                or r["parameters"].get("warehouse") in (str(warehouse), str(warehouse.resolve()))]
