"""Each RQ internal the project touches (worker/rqcompat.py), against a real redis-server: an RQ
release that changes one of them fails here."""

from __future__ import annotations

import time

import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.results import Result

from worker import rqcompat

NAME = "compat-q"


def queue(client: redis.Redis) -> Queue:
    return Queue(NAME, connection=client)


def test_queue_and_job_keys_are_where_rq_writes(redis_client: redis.Redis) -> None:
    q = queue(redis_client)
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"})
    assert rqcompat.queue_key(NAME) == q.key == f"rq:queue:{NAME}"
    assert redis_client.lrange(rqcompat.queue_key(NAME), 0, -1) == [job.id.encode()]
    assert redis_client.hget(rqcompat.job_key(job.id), "status") == b"queued"
    assert rqcompat.intermediate_key(NAME) == rqcompat.intermediate_for_key(q.key)


def test_a_dequeue_moves_the_id_onto_the_intermediate_list(redis_client: redis.Redis) -> None:
    q = queue(redis_client)
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"})
    Queue.dequeue_any([q], None, connection=redis_client)
    assert rqcompat.intermediate_raw(redis_client, NAME) == [job.id.encode()]
    assert rqcompat.remove_intermediate(redis_client, NAME, job.id) == 1
    assert rqcompat.intermediate_raw(redis_client, NAME) == []


def test_intermediate_items_are_read_as_bytes(redis_client: redis.Redis) -> None:
    redis_client.rpush(rqcompat.intermediate_key(NAME), b"\xff\xfe")
    assert rqcompat.intermediate_raw(redis_client, NAME) == [b"\xff\xfe"]
    with redis_client.pipeline() as pipe:
        rqcompat.remove_intermediate(pipe, NAME, b"\xff\xfe")
        assert pipe.execute() == [1]


def test_first_seen_marks(redis_client: redis.Redis) -> None:
    q = queue(redis_client)
    assert rqcompat.first_seen(q, "j1") is None
    assert rqcompat.mark_first_seen(q, "j1") is True
    assert rqcompat.mark_first_seen(q, "j1") is False
    seen = rqcompat.first_seen(q, "j1")
    assert seen is not None and abs(seen.timestamp() - time.time()) < 60


def test_worker_keys_and_lookup(redis_client: redis.Redis) -> None:
    worker = SimpleWorker([queue(redis_client)], connection=redis_client)
    worker.register_birth()
    assert rqcompat.worker_key(worker.name) == worker.key
    members = redis_client.smembers(rqcompat.workers_key(queue(redis_client).name))
    assert members == {worker.key.encode()}  # the set sgr_workers counts
    found = rqcompat.find_worker(redis_client, worker.name)
    assert found is not None and found.pid == worker.pid and found.hostname == worker.hostname
    redis_client.delete(worker.key)
    assert rqcompat.find_worker(redis_client, worker.name) is None


def _started(redis_client: redis.Redis) -> tuple[Queue, Job, rqcompat.Execution]:
    q = queue(redis_client)
    job = q.enqueue("worker.jobs.handle_event", {"event_id": "e"}, retry=None)
    worker = SimpleWorker([q], connection=redis_client)
    worker.register_birth()
    dequeued = Queue.dequeue_any([q], None, connection=redis_client)
    assert dequeued is not None
    execution = worker.prepare_execution(job)
    worker.prepare_job_execution(job, remove_from_intermediate_queue=True)
    return q, job, execution


def test_started_entries_and_executions(redis_client: redis.Redis) -> None:
    q, job, execution = _started(redis_client)
    assert rqcompat.started_entries(q) == [(job.id, execution.id)]
    assert rqcompat.started_job_ids(q) == {job.id}
    fetched = rqcompat.fetch_execution(redis_client, job.id, execution.id)
    assert fetched.worker_name == execution.worker_name and fetched.composite_key
    assert job.get_status() == rqcompat.JobStatus.STARTED


def test_made_due_then_cleaned_up_fails_a_job_without_retries(redis_client: redis.Redis) -> None:
    q, job, execution = _started(redis_client)
    rqcompat.run_started_cleanup(q, due_only=True)  # not due yet: untouched
    assert rqcompat.started_job_ids(q) == {job.id}
    rqcompat.make_due(redis_client, q, execution)
    assert redis_client.zscore(q.started_job_registry.key, execution.composite_key) == 0
    rqcompat.run_started_cleanup(q, due_only=True)
    assert rqcompat.started_job_ids(q) == set()
    assert job.id in rqcompat.failed_job_ids(q, 10)
    assert "Abandoned" in rqcompat.exc_info(Job.fetch(job.id, connection=redis_client))


def test_failed_ids_newest_first_and_exception_text(redis_client: redis.Redis) -> None:
    q = queue(redis_client)
    jobs = [q.enqueue("worker.jobs.handle_event", {"event_id": f"e{i}"}) for i in range(3)]
    for n, job in enumerate(jobs):
        q.failed_job_registry.add(job, ttl=600 + n, exc_string=f"boom {n}")
    assert rqcompat.failed_job_ids(q, 2) == [jobs[2].id, jobs[1].id]
    assert rqcompat.exc_info(Job.fetch(jobs[0].id, connection=redis_client)) == ""
    Result.create_failure(jobs[0], ttl=60, exc_string="Traceback...\nboom 0\n")  # as a worker does
    assert (
        rqcompat.exc_info(Job.fetch(jobs[0].id, connection=redis_client)) == "Traceback...\nboom 0"
    )


def test_job_ids_rq_accepts() -> None:
    assert rqcompat.is_job_id("0f1e-ab_c")
    assert not rqcompat.is_job_id('{"event_id": "x"}')
    assert not rqcompat.is_job_id("a:b")


def test_exception_helpers_exist() -> None:
    try:
        raise ValueError("x")
    except ValueError as exc:
        text = rqcompat.format_exc_info((type(exc), exc, exc.__traceback__))
    assert "ValueError: x" in text
    assert callable(rqcompat.call_exception_handlers)
