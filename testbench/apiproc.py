"""A ``sgr api`` subprocess on a free loopback port, for the tests and the bench: started with
the given environment (Redis, data folder, hot store), ready once ``/healthz`` answers, stopped
by SIGTERM (uvicorn's graceful shutdown), its stderr kept for a failing test to show."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from testbench.redisproc import free_port


class ApiServer:
    def __init__(self, env: dict[str, str], *, floor: bool = False, port: int | None = None):
        self.env = {**os.environ, **env}
        self.port = port or free_port()
        self.floor = floor
        self.log = Path(tempfile.mkstemp(prefix="sgr-api-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> ApiServer:
        args = [sys.executable, "-m", "worker.cli", "api", "--host", "127.0.0.1"]
        args += ["--port", str(self.port)] + (["--bench-floor"] if self.floor else [])
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(args, env=self.env, stdout=err, stderr=err)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sgr api exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sgr api did not answer in {timeout_s} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)
