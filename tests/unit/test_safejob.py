"""The safe job, serializer, queue and worker (worker/safejob.py) against a real redis-server."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job

from producers.enqueue import enqueue_events
from tests.conftest import event
from worker import rqcompat
from worker.safejob import JOB_FUNCTIONS, SafeJob, SafeQueue, SafeSerializer, SafeWorker
from worker.settings import Settings

QUEUE = "cart-events"


class Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.makedirs, (self.path,))


class Greeter:
    def hello(self) -> str:
        return "hello"


def test_the_serializer_reads_plain_data_and_dates() -> None:
    value = ("worker.jobs.handle_event", None, ({"a": [1, 2.5, None, True]},), {})
    assert SafeSerializer.loads(SafeSerializer.dumps(value)) == value
    moment = datetime(2024, 1, 2, tzinfo=UTC)
    assert SafeSerializer.loads(pickle.dumps({"at": moment})) == {"at": moment}
    assert SafeSerializer.loads(json.dumps(["f", None, [1], {}]).encode()) == ["f", None, [1], {}]


def test_the_serializer_never_calls_what_a_pickle_names(tmp_path: Path) -> None:
    target = tmp_path / "x"
    with pytest.raises(pickle.UnpicklingError, match="os.makedirs"):
        SafeSerializer.loads(pickle.dumps(("f", None, (Boom(str(target)),), {})))
    assert not target.exists()
    with pytest.raises(pickle.UnpicklingError):
        SafeSerializer.loads(pickle.dumps(Path("/etc")))


def test_the_serializer_refuses_deep_nesting() -> None:
    deep: Any = []
    for _ in range(60):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        SafeSerializer.loads(pickle.dumps(("f", None, (deep,), {})))


def test_only_the_projects_functions_may_run(redis_client: redis.Redis) -> None:
    q = Queue(QUEUE, connection=redis_client)
    mine = q.enqueue("worker.jobs.handle_event", {"event_id": "e"})
    theirs = q.enqueue("os.makedirs", "/tmp/never")
    typo = q.enqueue("worker.jobs.handle_evnt", {})
    method = q.enqueue(Greeter().hello)  # a method of an instance (its class: not plain data)
    fetch = lambda j: SafeJob.fetch(j.id, connection=redis_client)  # noqa: E731
    assert fetch(mine).refusal() is None
    assert "'os.makedirs' is not one of" in (fetch(theirs).refusal() or "")
    assert "handle_evnt" in (fetch(typo).refusal() or "")
    assert fetch(method).refusal() is not None
    assert fetch(theirs).func.func.__name__ == "refuse"  # type: ignore[attr-defined]
    assert {
        "worker.jobs.handle_event",
        "worker.jobs.handle_batch",
        "worker.jobs.handle_due",
    } == JOB_FUNCTIONS


def test_an_unreadable_job_names_no_function(redis_client: redis.Redis, tmp_path: Path) -> None:
    q = Queue(QUEUE, connection=redis_client)
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"})
    redis_client.hset(rqcompat.job_key(job.id), "data", pickle.dumps(Boom(str(tmp_path / "y"))))
    safe = SafeJob.fetch(job.id, connection=redis_client)
    assert safe.func_name == SafeJob.UNREADABLE  # RQ reads it before running: no raise
    assert "os.makedirs" in (safe.refusal() or "")
    assert not (tmp_path / "y").exists()


def test_callbacks_named_in_a_job_are_never_called(redis_client: redis.Redis) -> None:
    q = Queue(QUEUE, connection=redis_client)
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"}, on_failure=os.getcwd)
    assert redis_client.hget(rqcompat.job_key(job.id), "failure_callback_name")
    safe = SafeJob.fetch(job.id, connection=redis_client)
    assert safe.failure_callback is None and safe.success_callback is None
    assert safe.stopped_callback is None


def test_the_worker_uses_the_safe_classes_whatever_it_is_given(
    redis_client: redis.Redis,
) -> None:
    given = Queue(QUEUE, connection=redis_client)  # as `rq worker` builds it: rq's classes
    worker = SafeWorker(
        [given], connection=redis_client, job_class="rq.job.Job", queue_class="rq.Queue",
        serializer="pickle", default_result_ttl=500,
    )  # fmt: skip
    assert worker.job_class is SafeJob and worker.queue_class is SafeQueue
    assert worker.serializer is SafeSerializer
    assert all(isinstance(q, SafeQueue) for q in worker.queues)
    assert worker.default_result_ttl == Settings().job_result_ttl_s
    assert worker.failure_ttl == Settings().job_failure_ttl_s


def test_stored_exception_text_is_redacted(redis_client: redis.Redis) -> None:
    q = SafeQueue(QUEUE, connection=redis_client)
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"})
    worker = SafeWorker([q], connection=redis_client)
    text = "Traceback\nStoreUnavailable: postgresql://sgr:Secret-9z@db/sgr password=Secret-9z\n"
    worker.handle_job_failure(job, q, exc_string=text)
    stored = SafeJob.fetch(job.id, connection=redis_client)
    shown = rqcompat.exc_info(stored)
    assert "Secret-9z" not in shown and "StoreUnavailable" in shown and "***" in shown
    for key in redis_client.scan_iter("rq:*"):
        if redis_client.type(key) == b"stream":
            for _id, fields in redis_client.xrange(key):  # type: ignore[union-attr]
                assert not any(b"Secret-9z" in v for v in fields.values())
    ttl = redis_client.ttl(rqcompat.job_key(job.id))
    assert 0 < ttl <= Settings().job_failure_ttl_s


def test_enqueued_jobs_carry_short_ttls(redis_client: redis.Redis) -> None:
    q = Queue(QUEUE, connection=redis_client)
    report = enqueue_events(q, [event()], result_ttl=42, failure_ttl=4242)
    job = Job.fetch(report.job_ids[0], connection=redis_client)
    assert (job.result_ttl, job.failure_ttl) == (42, 4242)


def test_the_queue_steps_over_poison(redis_client: redis.Redis) -> None:
    q = SafeQueue(QUEUE, connection=redis_client)
    redis_client.rpush(q.key, b"\xffpoison")
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"})
    got = SafeQueue.dequeue_any([q], None, connection=redis_client, job_class=SafeJob)
    assert got is not None and got[0].id == job.id
    letters = [json.loads(x) for x in redis_client.lrange("sgr:dead-letters", 0, -1)]  # type: ignore[union-attr]
    assert len(letters) == 1 and "not UTF-8" in letters[0]["error"]
    assert rqcompat.intermediate_raw(redis_client, QUEUE) == [job.id.encode()]
    assert redis_client.hget("sgr:metrics:queue-alerts", "poison_items") == b"1"
