"""The exporter's cost at a large table (``exporter_scrape_s`` in ``sgr bench``): a hot store
filled with N recorded outcomes at once (a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL, through the same trigger that counts every outcome: migration 0004), then scrapes of
``sgr metrics``' collector in a process of their own, timed, with that process's peak resident
memory (VmHWM: imports, connections and the scrapes).

``python -m testbench.benchexporter --scrape`` is that process (the settings from the
environment); ``exporter_phase`` fills and measures, per backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRAPES = 3


def fill(url: str, path: Path, n: int, prefix: str = "bench-") -> float:
    """Record ``n`` outcomes finished a day ago in one statement; the seconds it took."""
    from stores.hot import open_hot_store

    store = open_hot_store(url, path)
    try:
        started = time.monotonic()
        finished = store._time_in(datetime.now(UTC) - timedelta(days=1))
        with store.transaction():
            store._write(
                store._text("hot", "bench_fill_events"),
                {"n": n, "prefix": prefix, "finished_at": finished},
            )
        return time.monotonic() - started
    finally:
        store.close()


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def scrape_here() -> dict[str, Any]:
    """In this process: the exporter's registry, scraped ``SCRAPES`` times (the first one is
    the exporter's first after its start)."""
    from prometheus_client import generate_latest

    from worker.metrics import exporter_redis, registry_for
    from worker.settings import load_settings

    settings = load_settings()
    registry = registry_for(settings, exporter_redis(settings))
    times, size = [], 0
    for _ in range(SCRAPES):
        started = time.monotonic()
        body = generate_latest(registry)
        times.append(time.monotonic() - started)
        size = len(body)
    ok = b'sgr_up{source="hot_store"} 1.0' in body and b'sgr_up{source="redis"} 1.0' in body
    return {
        "scrape_s": [round(t, 4) for t in times],
        "peak_mb": _peak_mb(),
        "bytes": size,
        "sources_up": ok,
    }


def measure(url: str, data_dir: Path, redis_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "SGR_HOT_STORE_URL": url,
        "SGR_DATA_DIR": str(data_dir),
        "SGR_REDIS_URL": redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "testbench.benchexporter", "--scrape"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"exporter scrape failed: {done.stderr[-800:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def exporter_phase(n: int, root: Path, redis_url: str, postgres: bool = True) -> dict[str, Any]:
    """``n`` outcomes in a fresh SQLite hot store (and a fresh PostgreSQL database when a server
    is at hand: testbench/pgproc.py), scraped; the slowest scrape over the backends is
    ``exporter_scrape_s``, the largest peak ``exporter_peak_mb``."""
    by_store: dict[str, Any] = {}
    folder = root / "exporter"
    folder.mkdir(parents=True, exist_ok=True)
    fill_s = fill("", folder / "hot.sqlite", n)
    by_store["sqlite"] = {"fill_s": round(fill_s, 1), **measure("", folder, redis_url)}
    if postgres:
        from testbench.pgproc import fresh_database, postgres_server

        try:
            with postgres_server() as server, fresh_database(server, "sgr_bench_") as url:
                fill_s = fill(url, folder / "unused.sqlite", n)
                by_store["postgres"] = {
                    "fill_s": round(fill_s, 1),
                    **measure(url, folder, redis_url),
                }
        except RuntimeError as exc:  # no PostgreSQL on this machine
            by_store["postgres"] = {"skipped": str(exc)[:200]}
    measured = [v for v in by_store.values() if "scrape_s" in v]
    return {
        "exporter_events": n,
        "exporter_scrape_s": max(max(v["scrape_s"]) for v in measured),
        "exporter_peak_mb": max(v["peak_mb"] for v in measured),
        "exporter_by_store": by_store,
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--scrape"]:
        print(json.dumps(scrape_here()))
    else:
        sys.stderr.write("usage: python -m testbench.benchexporter --scrape\n")
        sys.exit(2)
