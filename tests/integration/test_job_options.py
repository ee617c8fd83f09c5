"""Every producer enqueues with the job settings (``Settings.job_options``): ``sgr produce`` and
``sgr bridge`` give each job ``SGR_JOB_TIMEOUT_S``, ``SGR_JOB_RESULT_TTL_S``,
``SGR_JOB_FAILURE_TTL_S`` and ``SGR_MAX_ATTEMPTS`` - not ``enqueue_events``' defaults (the bridge
once gave every job a 120 s timeout whatever the setting)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job

from tests.conftest import event, worker_env
from worker.keys import Keys
from worker.settings import Settings

pytestmark = pytest.mark.integration
QUEUE = "cart-events"
CHOSEN = {
    "SGR_JOB_TIMEOUT_S": "177",
    "SGR_JOB_RESULT_TTL_S": "33",
    "SGR_JOB_FAILURE_TTL_S": "4444",
    "SGR_MAX_ATTEMPTS": "5",
}


def sgr(redis_url: str, data_dir: Path, *args: str, stdin: str | None = None) -> None:
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url, **CHOSEN}
    sgr_bin = Path(sys.executable).with_name("sgr")
    done = subprocess.run(
        [str(sgr_bin), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]


def jobs(client: redis.Redis) -> list[Job]:
    queue = Queue(QUEUE, connection=client)
    return [j for j in (queue.fetch_job(i) for i in queue.job_ids) if j is not None]


@pytest.mark.parametrize("producer", ["produce", "bridge"])
def test_each_producer_enqueues_with_the_job_settings(
    producer: str, redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    payload = json.dumps(event(event_id=f"{producer}-1"))
    if producer == "produce":
        sgr(redis_url, data_dir, "produce", "--file", "-", stdin=payload + "\n")
    else:
        redis_client.rpush(Keys.from_settings(Settings()).events_in, payload)
        sgr(redis_url, data_dir, "bridge", "--once")
    found = jobs(redis_client)
    assert len(found) == 1
    job = found[0]
    assert job.timeout == 177
    assert job.result_ttl == 33
    assert job.failure_ttl == 4444
    assert job.retries_left == 4  # 5 attempts: the first and 4 retries
