"""A hot store that fills up mid-run (a real SQLite file on a real, tiny tmpfs): a batch job's
events are not dead-lettered; the worker stops, the job goes back on the queue with its attempt
given back, and once there is room again every event gets its offer. The single-event path has
always done this; the batch path now goes through the same runner."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from stores.hot import open_hot_store
from testbench.fleet import Fleet
from tests.conftest import NOW, event, worker_env
from worker.deadletter import DeadLetters

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_dir(tmp_path: Path, cold_db: Path) -> Iterator[Path]:
    """A data folder on a 2 MB tmpfs of its own (skipped where this process may not mount)."""
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (where / "cold.duckdb").symlink_to(cold_db)
        (where / "history.sqlite").symlink_to(cold_db.with_name("history.sqlite"))
        open_hot_store("", where / "hot.sqlite").close()  # as setup-data leaves it
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the folder's file system has no room left."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 4096)
    return filler


def test_a_full_store_keeps_batched_events_queued(
    redis_client: redis.Redis, redis_url: str, tiny_dir: Path
) -> None:
    queue = Queue("cart-events", connection=redis_client)
    env = worker_env(tiny_dir)
    enqueue_events(queue, [event(event_id="first", session="s0", user="u000900")])
    Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(60)
    hot = open_hot_store("", tiny_dir / "hot.sqlite")
    assert (hot.get_outcome("first") or pytest.fail("no outcome")).outcome == "offer"
    hot.close()

    filler = fill(tiny_dir)
    carts = [event(event_id=f"f{i}", session=f"s{i}", user=f"u{i:06d}", at=NOW) for i in range(40)]
    report = enqueue_events(queue, carts, batch_size=40)
    fleet = Fleet(1, redis_url, "cart-events", env, burst=True).start()
    fleet.wait(60)
    assert fleet.procs[0].returncode is not None  # the worker stopped itself
    letters = DeadLetters(redis_client, "sgr:dead-letters")
    assert letters.count() == 0 and letters.store_failures() == 0
    job = queue.fetch_job(report.job_ids[0])
    assert job is not None and job.get_status() == "queued", job and job.get_status()
    assert job.retries_left == 2  # its attempt given back: the store's fault, not the events'

    filler.unlink()
    Fleet(1, redis_url, "cart-events", env, burst=True).start().wait(60)
    hot = open_hot_store("", tiny_dir / "hot.sqlite")
    outcomes = {c["event_id"]: hot.get_outcome(str(c["event_id"])) for c in carts}
    assert all(outcomes.values()), outcomes  # one outcome each, none a dead letter
    assert {o.outcome for o in outcomes.values() if o} <= {"offer", "no_offer"}
    assert sum(1 for o in outcomes.values() if o and o.outcome == "offer") >= 30
    hot.close()
