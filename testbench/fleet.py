"""Worker processes as an operator runs them: the stock ``rq worker`` command, as subprocesses,
with the project's worker class (``worker.safejob.SafeWorker``: only the project's job functions
run) unless another is named (the bench's floor runs RQ's own ``SimpleWorker``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SIMPLE = "rq.worker.SimpleWorker"
SAFE = "worker.safejob.SafeWorker"


def rq_worker_command(
    redis_url: str, queue: str, *, burst: bool = False, worker_class: str = SAFE
) -> list[str]:
    rq = Path(sys.executable).with_name("rq")
    cmd = [str(rq), "worker", "--url", redis_url, "-w", worker_class, "--logging_level", "WARNING"]
    if burst:
        cmd.append("--burst")
    return [*cmd, queue]


class Fleet:
    """N ``rq worker`` processes with the given SGR_* environment."""

    def __init__(
        self,
        count: int,
        redis_url: str,
        queue: str,
        env: Mapping[str, str],
        *,
        burst: bool = False,
        worker_class: str = SAFE,
        log_dir: Path | None = None,
    ) -> None:
        self.count = count
        self.command = rq_worker_command(redis_url, queue, burst=burst, worker_class=worker_class)
        self.env = {**os.environ, **env, "SGR_REDIS_URL": redis_url, "SGR_QUEUE": queue}
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        index = len(self.procs)
        out = (
            open(self.log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115
            if self.log_dir
            else subprocess.DEVNULL
        )
        proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start(self) -> Fleet:
        for _ in range(self.count):
            self.spawn()
        return self

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def wait(self, timeout_s: float) -> None:
        for proc in self.procs:
            proc.wait(timeout=timeout_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        for proc in self.alive():
            proc.send_signal(sig)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
