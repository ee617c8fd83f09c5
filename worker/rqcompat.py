"""Every RQ internal the project touches, in one place (rq is pinned ``>=3.0,<4``): key names of
jobs, workers and the intermediate list, the started and failed registries' entries, executions,
and how a registry entry is made due. The reaper, the metrics collector and the safe worker
(``worker/safejob.py``) use these instead of RQ's private attributes, and
``tests/unit/test_rqcompat.py`` checks each against a real redis-server, so an RQ release that
changes one fails there first."""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import JOB_ID_PATTERN, Job, JobStatus
from rq.job_lifecycle import call_exception_handlers, format_exc_info
from rq.worker import BaseWorker, SimpleWorker, Worker
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

__all__ = [
    "DeserializationError",
    "Execution",
    "NoSuchJobError",
    "SimpleWorker",
    "call_exception_handlers",
    "format_exc_info",
    "intermediate_for_key",
    "is_job_id",
    "Job",
    "JobStatus",
    "Queue",
    "Worker",
    "exc_info",
    "failed_job_ids",
    "fetch_execution",
    "find_worker",
    "first_seen",
    "intermediate_key",
    "intermediate_raw",
    "job_key",
    "make_due",
    "mark_first_seen",
    "queue_key",
    "remove_intermediate",
    "run_started_cleanup",
    "started_entries",
    "started_job_ids",
    "worker_key",
    "workers_key",
]


def queue_key(name: str) -> str:
    """The list RQ keeps a queue's job ids in: ``rq:queue:<name>``."""
    return Queue.redis_queue_namespace_prefix + name


def intermediate_key(name: str) -> str:
    """The list a worker moves a job id onto (LMOVE) before it registers the job as started."""
    return IntermediateQueue.get_intermediate_queue_key(queue_key(name))


def intermediate_for_key(key: str) -> str:
    """``intermediate_key`` from the queue's list key (what RQ's dequeue hands around)."""
    return IntermediateQueue.get_intermediate_queue_key(key)


def is_job_id(text: str) -> bool:
    """Whether RQ would accept ``text`` as a job id (letters, digits, '_' and '-')."""
    return JOB_ID_PATTERN.fullmatch(text) is not None


def job_key(job_id: str) -> str:
    """The hash of one job: ``rq:job:<id>``."""
    return Job.key_for(job_id)


def worker_key(worker_name: str) -> str:
    """The hash of one live worker; it expires when the worker stops heart-beating."""
    return BaseWorker.redis_worker_namespace_prefix + worker_name


def workers_key(queue_name: str) -> str:
    """The set of the keys of the workers registered on a queue (``rq:workers:<queue>``; a worker
    leaves it when it stops, or when a reaper registers its death)."""
    return str(WORKERS_BY_QUEUE_KEY % queue_name)


def find_worker(client: redis.Redis, worker_name: str) -> BaseWorker | None:
    """The live worker of that name, or None when its key is gone."""
    return Worker.find_by_key(worker_key(worker_name), connection=client)


def started_entries(queue: Queue) -> list[tuple[str, str]]:
    """``(job id, execution id)`` of every entry of the queue's started registry (no cleanup)."""
    return list(queue.started_job_registry.get_job_and_execution_ids(cleanup=False))


def started_job_ids(queue: Queue) -> set[str]:
    return set(queue.started_job_registry.get_job_ids(cleanup=False))


def fetch_execution(client: redis.Redis, job_id: str, execution_id: str) -> Execution:
    return Execution.fetch(execution_id, job_id, connection=client)


def make_due(client: redis.Redis, queue: Queue, execution: Execution) -> None:
    """Give an execution's started-registry entry score 0, so that RQ's own cleanup (``cleanup
    (timestamp=1)``) takes exactly the entries made due this way."""
    client.zadd(queue.started_job_registry.key, {execution.composite_key: 0}, xx=True)


def run_started_cleanup(queue: Queue, *, due_only: bool = False) -> None:
    """RQ's started-registry cleanup: expired entries retried (attempts left) or failed.
    ``due_only``: only the entries ``make_due`` marked."""
    if due_only:
        queue.started_job_registry.cleanup(timestamp=1)
    else:
        queue.started_job_registry.cleanup()


def failed_job_ids(queue: Queue, limit: int) -> list[str]:
    """The newest ``limit`` job ids of the queue's failed registry (no cleanup)."""
    return list(queue.failed_job_registry.get_job_ids(0, limit - 1, desc=True, cleanup=False))


def exc_info(job: Job) -> str:
    """The text RQ stored for the job's last failure (empty if none): its latest result's (RQ 3
    keeps failures in results; ``job.exc_info`` is deprecated), else the job hash's."""
    result = job.latest_result()
    if result is not None and result.exc_string:
        return str(result.exc_string).strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return (job.exc_info or "").strip()


def intermediate_raw(client: redis.Redis, name: str) -> list[bytes]:
    """The intermediate list's items as stored (bytes: an item need not be UTF-8)."""
    items: Any = client.lrange(intermediate_key(name), 0, -1)
    return [bytes(item) for item in items]


def remove_intermediate(client: redis.Redis | Any, name: str, item: bytes | str) -> Any:
    """Remove an item from the intermediate list (a client, or a pipeline: queued there)."""
    return client.lrem(intermediate_key(name), 0, item)  # type: ignore[arg-type]


def mark_first_seen(queue: Queue, job_id: str) -> bool:
    """Note when the reaper first saw an intermediate item; True if this call noted it."""
    return queue.intermediate_queue.set_first_seen(job_id)


def first_seen(queue: Queue, job_id: str) -> datetime | None:
    return queue.intermediate_queue.get_first_seen(job_id)
