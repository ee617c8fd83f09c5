"""The bench's machinery: its events, lanes of jobs drained by worker fleets, data folders per
phase, CPU and memory readings from ``/proc``, and a description of the machine."""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from testbench.fleet import SIMPLE


class BenchError(RuntimeError):
    pass


# Events --------------------------------------------------------------------------------------
def bench_events(count: int, *, customers: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """Eligible abandoned carts, each of its own session and (while they last) its own customer:
    one in ten from a customer the cold store does not know."""
    rng = random.Random(seed)
    known = rng.sample(range(customers), min(count, customers))
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        new = i >= len(known) or rng.random() < 0.1
        user = f"new-{prefix}-{i}" if new else f"u{known[i]:06d}"
        events.append(
            {
                "event_id": f"{prefix}-{i}",
                "type": "cart_abandoned",
                "occurred_at": (now - timedelta(milliseconds=count - i)).isoformat(),
                "user_id": user,
                "session_id": f"s-{prefix}-{i}",
                "inventory": "in_stock",
                "cart": {
                    "currency": "EUR",
                    "value": round(rng.uniform(40, 400), 2),
                    "margin": round(rng.uniform(0.3, 0.6), 3),
                },
            }
        )
    return events


def batches(events: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Events in consecutive jobs of ``size`` (the payloads of ``worker.jobs.handle_batch``)."""
    return [list(events[i : i + size]) for i in range(0, len(events), size)]


# Machinery -----------------------------------------------------------------------------------
def redis_calls(conn: Any) -> int:
    """Commands redis-server has run so far (INFO commandstats; scripts' own calls included)."""
    stats = conn.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def rss_mb(pid: int) -> float | None:
    """Resident size of a process (VmRSS) in MiB, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, or 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU per job of the workers and of redis-server over the batches it measured, by kind."""

    def __init__(self, redis_pid: int) -> None:
        self.redis_pid = redis_pid
        self.totals: dict[str, list[float]] = {}  # kind -> [worker s, redis s, jobs]

    def run(
        self,
        kind: str,
        pids: Sequence[int],
        lane: Lane,
        func: str,
        payloads: Sequence[Any],
        timeout_s: float,
    ) -> float:
        """``lane.run(func, payloads)``, its CPU added to ``kind``; the drain rate."""
        w0, r0 = sum(cpu_seconds(p) for p in pids), cpu_seconds(self.redis_pid)
        rate = lane.run(func, payloads, timeout_s)
        w1, r1 = sum(cpu_seconds(p) for p in pids), cpu_seconds(self.redis_pid)
        total = self.totals.setdefault(kind, [0.0, 0.0, 0])
        total[0] += w1 - w0
        total[1] += r1 - r0
        total[2] += len(payloads)
        return rate

    def report(self) -> dict[str, dict[str, float]]:
        return {
            kind: {
                "workers_ms": round(w / n * 1000, 3),
                "redis_ms": round(r / n * 1000, 3),
                "total_ms": round((w + r) / n * 1000, 3),
            }
            for kind, (w, r, n) in self.totals.items()
            if n
        }


def machine() -> dict[str, Any]:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import platform

    import redis as redis_py
    import rq

    server = shutil.which("redis-server")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "python": platform.python_version(),
        "rq": rq.__version__,
        "redis_py": redis_py.__version__,
        "redis_server": server,
        "loadavg_at_start": list(os.getloadavg()),
    }


class Lane:
    """One queue and its registries: push payloads as jobs, wait until they are all done."""

    def __init__(self, conn: Any, name: str) -> None:
        from rq import Queue

        self.conn = conn
        self.queue = Queue(name, connection=conn)
        self.finished = self.queue.finished_job_registry
        self.failed = self.queue.failed_job_registry
        self.polls = 0  # done() calls of the last run (their Redis commands are the bench's)

    def done(self) -> int:
        return self.finished.get_job_count(cleanup=False) + self.failed.get_job_count(cleanup=False)

    def push(self, func: str, payloads: Sequence[Any]) -> None:
        """The producer's own way: ``prepare_data`` + ``enqueue_many`` in pipelines of 500."""
        from rq import Queue, Retry

        for start in range(0, len(payloads), 500):
            jobs = [
                Queue.prepare_data(
                    func,
                    args=(p,),
                    timeout=120,
                    retry=Retry(max=2),
                    description=(
                        f"{len(p)} cart events"
                        if isinstance(p, list)
                        else f"cart event {p.get('event_id')}"
                    ),
                )
                for p in payloads[start : start + 500]
            ]
            with self.conn.pipeline() as pipe:
                self.queue.enqueue_many(jobs, pipeline=pipe)
                pipe.execute()

    def run(
        self, func: str, payloads: Sequence[Any], timeout_s: float, poll_s: float = 0.005
    ) -> float:
        """Push ``payloads`` and wait for all of them; the drain rate in jobs per second. Polling
        costs CPU on the machine measured: slow phases poll less often (``poll_s``)."""
        target = self.done() + len(payloads)
        t0 = time.perf_counter()
        self.push(func, payloads)
        deadline = t0 + timeout_s
        self.polls = 0
        while self.done() < target:
            self.polls += 1
            if time.perf_counter() > deadline:
                raise BenchError(
                    f"{self.queue.name}: {target - self.done()} of {len(payloads)} jobs not done "
                    f"after {timeout_s:.0f} s (failed so far: {self.failed.get_job_count()})"
                )
            time.sleep(poll_s)
        return len(payloads) / (time.perf_counter() - t0)

    def wait_workers(self, count: int, timeout_s: float = 120.0) -> None:
        from rq import Worker

        deadline = time.monotonic() + timeout_s
        while Worker.count(connection=self.conn, queue=self.queue) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"{count} workers did not register within {timeout_s:.0f} s")
            time.sleep(0.05)


@dataclass
class Phase:
    """A data folder with a fresh hot store beside a shared cold store."""

    root: Path
    name: str
    cold_db: Path
    dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dir = self.root / self.name
        self.dir.mkdir(parents=True)
        (self.dir / "cold.duckdb").symlink_to(self.cold_db)
        (self.dir / "history.sqlite").symlink_to(self.cold_db.with_name("history.sqlite"))
        from stores.hot import open_hot_store

        open_hot_store("", self.dir / "hot.sqlite").close()  # as `sgr setup-data` leaves it

    def env(self, log_level: str, **extra: str) -> dict[str, str]:
        return {
            "SGR_DATA_DIR": str(self.dir),
            "SGR_ENGINE": "policy",
            "SGR_LOG_LEVEL": log_level,
            "SGR_OFFER_DELAY_MINUTES": "0",  # the bench measures decisions, not waiting
            "SGR_QUIET_HOURS": "",
            **extra,
        }

    def stages(self, since: datetime) -> dict[str, Any]:
        """p50/mean ms per stage of the pipeline's events enqueued since ``since`` (the
        collector's view; the reference job's offers are left out)."""
        from stores.hot import open_hot_store
        from testbench.collector import build_report, load_rows

        hot = open_hot_store("", self.dir / "hot.sqlite")
        try:
            rows = [r for r in load_rows(hot, since) if r.engine != "reference"]
        finally:
            hot.close()
        report = build_report(rows)
        return {
            "events": report["events"],
            "outcomes": report["outcomes"],
            "stages_ms_p50": {k: v["p50"] for k, v in report["stages_ms"].items() if v["n"]},
            "stages_ms_mean": {k: v["mean"] for k, v in report["stages_ms"].items() if v["n"]},
            "enqueue_to_publish_ms": report["latency_ms"]["enqueue_to_publish"],
            "fallbacks": report["fallbacks"],
            "errors": report["errors"],
        }


def make_fleet(count: int, url: str, queue: str, env: dict[str, str], worker_class: str) -> Any:
    from testbench.fleet import Fleet

    return Fleet(count, url, queue, env, worker_class=worker_class)


def fleet_rss(fleet: Any) -> list[float]:
    return [v for v in (rss_mb(p.pid) for p in fleet.alive()) if v is not None]


@dataclass
class BenchConfig:
    workers: int = 2  # floor and rules phase
    worker_class: str = SIMPLE
    rounds: int = 3  # floor/rules batches, alternating
    floor_jobs: int = 3000
    rules_events: int = 3000
    fork_floor_jobs: int = 400  # the forking Worker's floor, for the choice of class (0 = skip)
    llm_workers: tuple[int, ...] = (1, 4, 16)
    llm_latency_ms: float = 100.0
    llm_seconds: float = 6.0  # events per W: W / latency * seconds
    vllm_url: str | None = None  # None: SGR_LLM_URL if it answers (auto_vllm)
    auto_vllm: bool = True
    vllm_workers: int = 2  # processes against vLLM, in batch jobs
    vllm_inflight: int = 16  # requests in flight against vLLM, both sides
    vllm_requests: int = 64
    customers: int = 20_000
    log_level: str = "INFO"  # the workers' structlog level (production default)
    compare_duckdb: bool = True  # also run the rules batches with SGR_HISTORY_SOURCE=duckdb
    batch_size: int = 50  # events per job of the batch phase (batch_vs_floor)
    inflight: int = 64  # LLM requests in flight over the workers (llm_inflight_efficiency)
    inflight_workers: int = 2
    inflight_latency_ms: float = 500.0
    inflight_jobs: int = 4  # batch jobs per worker in the in-flight phase
    seed: int = 5

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        base: dict[str, Any] = {
            "rounds": 1,
            "floor_jobs": 300,
            "rules_events": 300,
            "fork_floor_jobs": 60,
            "llm_workers": (1, 4),
            "llm_seconds": 2.0,
            "vllm_requests": 32,
            "inflight_jobs": 2,
            "customers": 3000,
        }
        return cls(**(base | overrides))
