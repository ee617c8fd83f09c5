"""Dead letters end to end: a poison event lands in the list with its error, `sgr dead-letters`
lists it, and `sgr dead-letters requeue` puts letters back on the queue after a fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Queue

from producers.enqueue import enqueue_events
from stores.sqlite import SqliteHotStore
from testbench.fleet import Fleet
from tests.conftest import event, make_runtime, worker_env
from worker.deadletter import DeadLetters
from worker.jobs import dead_letter

pytestmark = pytest.mark.integration
QUEUE = "cart-events"


def sgr(redis_url: str, data_dir: Path, *args: str) -> str:
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url, "COLUMNS": "200"}
    sgr_bin = Path(sys.executable).with_name("sgr")
    done = subprocess.run(
        [str(sgr_bin), *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def drain(redis_url: str, data_dir: Path) -> None:
    fleet = Fleet(1, redis_url, QUEUE, worker_env(data_dir), burst=True)
    fleet.start().wait(60)
    assert fleet.procs[0].returncode == 0


def test_poison_event_listed_and_requeued(
    redis_url: str, redis_client: redis.Redis, data_dir: Path
) -> None:
    q = Queue(QUEUE, connection=redis_client)
    poison = {k: v for k, v in event(event_id="bad-1").items() if k != "cart"}
    enqueue_events(q, [poison, event(event_id="ok-1", session="s2")], validate=False)
    drain(redis_url, data_dir)

    letters = DeadLetters(redis_client, "sgr:dead-letters")
    assert [lt.event_id for lt in letters.list()] == ["bad-1"]
    assert "needs a 'cart'" in letters.list()[0].error
    assert q.failed_job_registry.count == 1  # not retried: bad input does not get better

    # A valid event dead-lettered by a failure that was since fixed (as the worker records it).
    runtime = make_runtime(data_dir, redis_client)
    dead_letter(runtime, event(event_id="fixed-1", session="s3", user="u000003"), "boom", None)

    listing = sgr(redis_url, data_dir, "dead-letters")
    assert "2 dead letter(s)" in listing and "bad-1" in listing and "fixed-1" in listing

    out = sgr(redis_url, data_dir, "dead-letters", "requeue", "fixed-1")
    assert "requeued 1 event(s)" in out
    assert [lt.event_id for lt in letters.list()] == ["bad-1"]
    drain(redis_url, data_dir)
    hot = SqliteHotStore(data_dir / "hot.sqlite")
    fixed = hot.get_outcome("fixed-1")
    assert fixed is not None and fixed.outcome == "offer"

    # Requeueing the poison event without a fix brings it back, once, with its error.
    assert "requeued 1 event(s)" in sgr(redis_url, data_dir, "dead-letters", "requeue")
    drain(redis_url, data_dir)
    assert [lt.event_id for lt in letters.list()] == ["bad-1"]
    bad = hot.get_outcome("bad-1")
    assert bad is not None and bad.outcome == "dead_letter"


def test_a_dead_letter_is_corrected_with_requeue_payload(
    redis_url: str, redis_client: redis.Redis, data_dir: Path, tmp_path: Path
) -> None:
    """A bad payload re-sent valid under the same event id is a replay; `requeue --payload FILE`
    replaces the stored payload with the corrected event, which then gets its offer."""
    import json

    q = Queue(QUEUE, connection=redis_client)
    bad = event(event_id="fix-1", cart={"currency": "EUR", "value": 120, "margin": True})
    enqueue_events(q, [bad], validate=False)
    drain(redis_url, data_dir)
    hot = SqliteHotStore(data_dir / "hot.sqlite")
    assert hot.get_outcome("fix-1").outcome == "dead_letter"  # type: ignore[union-attr]

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(event(event_id="fix-1")))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(event(event_id="other")))
    env = {**os.environ, **worker_env(data_dir), "SGR_REDIS_URL": redis_url}
    sgr_bin = str(Path(sys.executable).with_name("sgr"))
    refused = subprocess.run(
        [sgr_bin, "dead-letters", "requeue", "fix-1", "--payload", str(wrong)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "is not the dead letter's" in refused.stderr
    out = sgr(redis_url, data_dir, "dead-letters", "requeue", "fix-1", "--payload", str(fixed))
    assert "requeued 1 event(s)" in out
    drain(redis_url, data_dir)
    assert hot.get_outcome("fix-1").outcome == "offer"  # type: ignore[union-attr]
    assert DeadLetters(redis_client, "sgr:dead-letters").count() == 0
