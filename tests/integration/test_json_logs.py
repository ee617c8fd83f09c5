"""With SGR_LOG_FORMAT=json every line a worker process prints, on stdout or stderr, is one JSON
object: RQ's own lines (start-up, per job, a failed job's traceback as a field) and the
project's. SGR_LOG_LEVEL=WARNING quiets RQ's per-job lines. Real worker subprocesses (`sgr
worker` and the stock `rq worker -w worker.safejob.SafeWorker`) over a few events, among them
ones that fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from testbench.fleet import rq_worker_command
from tests.conftest import event, worker_env

pytestmark = pytest.mark.integration
SGR = str(Path(sys.executable).with_name("sgr"))
BAD = {**event(event_id="bad-margin"), "cart": {"currency": "EUR", "value": 50, "margin": 1.7}}


def run_worker(
    command: list[str], data_dir: Path, redis_url: str, redis_client: redis.Redis, level: str
) -> list[str]:
    queue = Queue("cart-events", connection=redis_client)
    good = [event(event_id=f"e{i}", user=f"u00000{i}", session=f"s{i}") for i in range(1, 4)]
    enqueue_events(queue, good)
    enqueue_events(queue, [BAD, {"not": "an event"}], validate=False, max_attempts=1)
    env = {
        **os.environ,
        **worker_env(data_dir, SGR_LOG_FORMAT="json", SGR_LOG_LEVEL=level),
        "SGR_REDIS_URL": redis_url,
        "PYTHONWARNINGS": "always",  # a warning, if any, must come out as JSON too
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert queue.count == 0 and queue.failed_job_registry.count == 2
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    assert lines
    for line in lines:
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line[:300]!r}")
        assert isinstance(parsed, dict) and "event" in parsed and "level" in parsed, line
    return lines


def objects(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("how", ["sgr worker", "rq worker"])
def test_every_line_of_a_worker_is_one_json_object(
    how: str, data_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    command = (
        [SGR, "worker", "--burst"]
        if how == "sgr worker"
        else rq_worker_command(redis_url, "cart-events", burst=True)
    )
    found = objects(run_worker(command, data_dir, redis_url, redis_client, "INFO"))
    rq_lines = [o for o in found if str(o.get("logger", "")).startswith("rq.")]
    assert any("started with PID" in o["event"] for o in rq_lines)  # RQ's start-up line
    assert any("Job OK" in o["event"] for o in rq_lines)  # its per-job lines, at INFO
    assert all("\x1b" not in o["event"] for o in rq_lines)  # no colour codes
    failed = [o for o in found if o["event"] == "job failed"]
    assert len(failed) == 2  # the two bad events' jobs, each one line
    for o in failed:
        assert o["level"] == "error" and o["job_id"]
        assert "Traceback (most recent call last)" in o["traceback"]
        assert "InvalidEvent" in o["traceback"]


def test_sgr_log_level_warning_quiets_rq_s_per_job_lines(
    data_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    found = objects(
        run_worker([SGR, "worker", "--burst"], data_dir, redis_url, redis_client, "WARNING")
    )
    assert all(o["level"] in {"warning", "error", "critical"} for o in found), found
    assert not any("Job OK" in o["event"] for o in found)
    assert sum(o["event"] == "job failed" for o in found) == 2  # failures still said
