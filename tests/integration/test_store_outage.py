"""A worker on PostgreSQL lives through its store going away: every connection closed by
``pg_terminate_backend`` again and again while the queue drains, and a restart of the server while
the worker is idle. Real ``rq worker`` subprocesses (the project's SafeWorker), a real
redis-server, a real PostgreSQL (a throwaway server of our own for the restart), the LLM
stand-in at the edge so that the run lasts long enough to be hit mid-way."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from stores.hot import open_hot_store
from testbench.fleet import Fleet
from testbench.pgproc import PostgresServer, fresh_database, terminate_backends
from testbench.standin_llm import StandInLLM
from tests.conftest import event, worker_env

pytestmark = pytest.mark.integration
QUEUE = "cart-events"


def wait_for(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def events(first: int, n: int) -> list[dict[str, object]]:
    return [
        event(event_id=f"e{i}", session=f"s{i}", user=f"u{i:06d}", value=150.0)
        for i in range(first, first + n)
    ]


def env(data_dir: Path, url: str, llm: StandInLLM) -> dict[str, str]:
    return worker_env(
        data_dir,
        SGR_HOT_STORE_URL=url,
        SGR_ENGINE="vllm",
        SGR_LLM_URL=llm.url,
        SGR_LLM_MODEL="stand-in",
        SGR_LLM_TIMEOUT_S="5",
        SGR_REAP_INTERVAL_S="1",
        SGR_STORE_RETRY_S="20",
    )


def outcomes(url: str) -> dict[str, int]:
    """Outcomes per event id, read on a connection of the test's own."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT event_id, count(*) FROM processed_events GROUP BY 1").fetchall()
    return {r[0]: int(r[1]) for r in rows}


def drained(q: Queue) -> bool:
    return q.count == 0 and q.started_job_registry.count == 0


def test_worker_lives_through_every_connection_closed_mid_run(
    redis_url: str, redis_client: redis.Redis, data_dir: Path, pg_database: str
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    open_hot_store(pg_database, data_dir / "unused.sqlite").close()  # the schema, made once
    batch = events(0, 120)
    with StandInLLM(latency_s=0.02) as llm:
        fleet = Fleet(2, redis_url, QUEUE, env(data_dir, pg_database, llm))
        with fleet:
            enqueue_events(q, batch, max_attempts=3)
            mid_run_kills = 0
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                done = len(outcomes(pg_database))
                if done >= len(batch) and drained(q):
                    break
                closed = terminate_backends(pg_database)
                if closed and 0 < done < len(batch):
                    mid_run_kills += 1
                time.sleep(0.15)
            assert mid_run_kills >= 3, f"connections closed mid-run only {mid_run_kills} times"
            wait_for(lambda: drained(q), 30, "the queue to drain")
            # the worker is still running: nothing stopped it, with any status
            assert [p.poll() for p in fleet.procs] == [None, None]
            found = outcomes(pg_database)
            assert sorted(found) == sorted(e["event_id"] for e in batch)  # none lost
            assert set(found.values()) == {1}  # one outcome each (the primary key says so too)
            assert q.failed_job_registry.count == 0
            import psycopg

            with psycopg.connect(pg_database, autocommit=True) as conn:
                offers = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM offers")
                n_offers, distinct = offers.fetchone() or (0, 0)
            assert n_offers == distinct > 0  # none doubled
            wait_for(
                lambda: redis_client.xlen("sgr:offers") == n_offers, 20, "every offer published"
            )


@pytest.mark.slow
def test_idle_worker_lives_through_a_postgres_restart(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    with PostgresServer() as server, fresh_database(server.url) as url:
        open_hot_store(url, data_dir / "unused.sqlite").close()
        with StandInLLM(latency_s=0.01) as llm:
            fleet = Fleet(1, redis_url, QUEUE, env(data_dir, url, llm))
            with fleet:
                enqueue_events(q, events(0, 5))
                wait_for(lambda: len(outcomes(url)) == 5, 30, "the first events")
                server.restart()  # the worker is idle: its pooled connections die unseen
                enqueue_events(q, events(5, 5))
                wait_for(lambda: len(outcomes(url)) == 10, 60, "the events after the restart")
                wait_for(lambda: drained(q), 20, "the queue to drain")
                assert fleet.procs[0].poll() is None
                assert q.failed_job_registry.count == 0


def get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def up(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        s.labels["source"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sgr_up"
    }


def test_the_exporter_answers_through_closed_connections_and_a_redis_outage(
    data_dir: Path, pg_database: str
) -> None:
    import os
    import subprocess
    import sys

    from testbench.redisproc import RedisServer, free_port

    port = free_port()
    sgr = str(Path(sys.executable).with_name("sgr"))
    with RedisServer() as server:
        env = {
            **os.environ,
            **worker_env(data_dir, SGR_HOT_STORE_URL=pg_database, SGR_METRICS_PORT=str(port)),
            "SGR_REDIS_URL": server.url,
        }
        exporter = subprocess.Popen([sgr, "metrics", "serve"], env=env, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _answers(f"{base}/healthz"), 30, "the exporter")
            status, text = get(f"{base}/metrics")
            assert status == 200 and up(text) == {"hot_store": 1, "redis": 1}
            assert "sgr_events_total" in text and "sgr_workers 0.0" in text

            assert terminate_backends(pg_database) >= 1  # the exporter's pooled connection
            status, text = get(f"{base}/metrics")
            assert status == 200 and up(text) == {"hot_store": 1, "redis": 1}

            server.kill()  # Redis gone: its figures are left out, the rest answered
            status, text = get(f"{base}/metrics")
            assert status == 200 and up(text) == {"hot_store": 1, "redis": 0}
            assert get(f"{base}/healthz") == (200, "ok\n")  # no store read: cheap for probes
            server.start()
            wait_for(lambda: up(get(f"{base}/metrics")[1]).get("redis") == 1, 20, "Redis back")
        finally:
            exporter.terminate()
            exporter.wait(10)


def _answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False
