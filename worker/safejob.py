"""Only the project's job functions run, and nothing on the queue stops the line.

RQ runs whatever function a job names (``Queue.enqueue("os.makedirs", "/tmp/x")``) and loads a
job's data with ``pickle`` (which can call anything while loading). Here:

- ``SafeSerializer`` writes what RQ's default serializer writes (pickle, so jobs stay readable by
  any RQ) but reads only plain data: a pickle that names any class or function but a few
  ``datetime`` types is refused, as is JSON nested too deeply.
- ``SafeJob`` runs only ``JOB_FUNCTIONS``. Any other function, a job whose data cannot be read, a
  job naming a method of an instance, runs nothing: ``worker.jobs.refuse`` records a dead letter
  with the reason and counts it (``refused_jobs`` in the queue-alerts hash, exported by ``sgr
  metrics serve``). Callbacks named in a job are never called (the project uses none).
- ``SafeQueue`` moves poison off the queue: an item that is not UTF-8 is quarantined as a dead
  letter (raw bytes, base64) and the worker takes the next; a job hash RQ cannot read likewise.
  A UTF-8 item that is no job id stays in RQ's intermediate list for the reaper, which
  dead-letters it with its payload (``worker/reaper.py``).
- ``SafeWorker`` (RQ's ``SimpleWorker``) uses all three whatever the command line says, keeps
  results ``SGR_JOB_RESULT_TTL_S`` and failed jobs ``SGR_JOB_FAILURE_TTL_S``, and stores and logs
  exception text only redacted (``worker/redact.py``). It also moves due decisions (delayed
  abandonments, docs/recovery.md) onto its queue, polling the due set at most once a second.

``sgr worker`` runs a ``SafeWorker``; the stock command is
``rq worker -w worker.safejob.SafeWorker --url "$SGR_REDIS_URL" cart-events``.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from rq.utils import import_attribute

from worker.deadletter import MAX_DEPTH, DeadLetters, PoisonItem, depth, quarantine
from worker.keys import Keys
from worker.logs import configure, route_stdlib, routed_as_json
from worker.redact import redact_text
from worker.rqcompat import (
    DeserializationError,
    Job,
    NoSuchJobError,
    Queue,
    SimpleWorker,
    call_exception_handlers,
    format_exc_info,
    intermediate_for_key,
    is_job_id,
)
from worker.schedule import DueSet, move_due, request_rebuild
from worker.settings import Settings, load_settings

log = structlog.get_logger("sgr.safejob")

# The project's job functions: the only functions a SafeJob runs.
JOB_FUNCTIONS = frozenset(
    {"worker.jobs.handle_event", "worker.jobs.handle_batch", "worker.jobs.handle_due"}
)
DUE_POLL_S = 1.0  # the due set is polled at most this often per worker (one script call)
DUE_CHECK_S = 5.0  # and whether Redis lost it (one EXISTS) at most this often
REFUSE_FUNCTION = "worker.jobs.refuse"  # what a refused job runs instead (by name: jobs is above)

# The classes a job's pickle may name: plain data and dates (RQ stores nothing else for us).
_PICKLE_CLASSES = frozenset(
    {
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
    }
)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a job's data may not name {module}.{name}")


class SafeSerializer:
    """RQ's serializer interface: pickle out (as RQ's default), plain data only in."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> Any:
        if data[:1] in (b"{", b"[", b'"'):  # a JSON-serialized job (RQ's JSONSerializer)
            value = json.loads(data.decode("utf-8"))
        else:
            value = _PlainUnpickler(io.BytesIO(data)).load()
        if depth(value, MAX_DEPTH + 3) > MAX_DEPTH + 3:  # the job tuple adds up to 3 levels
            raise PoisonItem(f"job data nested deeper than {MAX_DEPTH} levels")
        return value


def _refusal(reason: str, func_name: str | None, raw: bytes | None = None) -> Callable[..., Any]:
    refuse = import_attribute(REFUSE_FUNCTION)
    return functools.partial(refuse, reason, func_name, raw)  # type: ignore[arg-type]


class SafeJob(Job):
    """An RQ job that runs only ``JOB_FUNCTIONS`` and reads its data with ``SafeSerializer``."""

    UNREADABLE = "<unreadable job data>"

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None):
        self.unreadable: str | None = None  # why the job's data could not be read
        super().__init__(id, connection=connection, serializer=SafeSerializer)

    def _deserialize_data(self) -> None:
        """RQ's, except that data it cannot read makes a job that names no function (RQ itself
        reads ``func_name`` before running a job: a raise there would skip our refusal)."""
        try:
            super()._deserialize_data()
        except DeserializationError as exc:
            cause = exc.__cause__
            self.unreadable = f"job data unreadable: {type(cause).__name__}: {cause}"[:300]
            self._func_name, self._instance, self._args, self._kwargs = (
                self.UNREADABLE,
                None,
                (),
                {},
            )

    def refusal(self) -> str | None:
        """Why this job may not run (None: it may)."""
        name, instance = self.func_name, self.instance
        if self.unreadable is not None:
            return self.unreadable
        if instance is not None:
            return "job names a method of an instance: only the project's job functions run"
        if name not in JOB_FUNCTIONS:
            return (
                f"job function {str(name)[:120]!r} is not one of the project's job functions "
                f"({', '.join(sorted(JOB_FUNCTIONS))})"
            )
        return None

    @property
    def func(self) -> Any:
        reason = self.refusal()
        if reason is not None:
            return _refusal(reason, None)
        return import_attribute(self.func_name)  # type: ignore[arg-type]

    def _execute(self) -> Any:
        reason = self.refusal()
        if reason is None:
            return super()._execute()
        if self.unreadable is not None:
            return _refusal(reason, None, self.data)()
        return _refusal(reason, self.func_name)(*self.args, **self.kwargs)

    # Callbacks named in a job hash would be imported and called: the project uses none.
    @property
    def success_callback(self) -> None:  # type: ignore[override]
        return None

    @property
    def failure_callback(self) -> None:  # type: ignore[override]
        return None

    @property
    def stopped_callback(self) -> None:  # type: ignore[override]
        return None


@functools.cache
def _keys() -> Keys:
    return Keys.from_settings(load_settings())


def _quarantine(connection: redis.Redis, raw: bytes, source: str, reason: str) -> None:
    from datetime import UTC, datetime

    keys = _keys()
    letters = DeadLetters(connection, keys.dead_letters, keys.store_failures)
    quarantine(letters, keys.queue_alerts, raw, source, reason, datetime.now(UTC))


def hash_bytes(client: Any, key: str) -> bytes:
    """A hash's fields as stored, ``field=value`` a line (what a poison job's dead letter keeps)."""
    fields: Any = client.hgetall(key)
    return b"\n".join(bytes(k) + b"=" + bytes(v) for k, v in (fields or {}).items())


def _readable(connection: redis.Redis, queue_key: str, item: Any, moved: bool) -> bool:
    """Whether a dequeued item may go on to RQ; poison is quarantined (and taken off RQ's
    intermediate list when ``moved`` put it there)."""
    raw = item if isinstance(item, bytes) else str(item).encode()
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if moved:
            connection.lrem(intermediate_for_key(queue_key), 1, raw)  # type: ignore[arg-type]
        _quarantine(connection, raw, queue_key, f"not UTF-8 ({exc.reason} at byte {exc.start})")
        return False


class SafeQueue(Queue):
    """An RQ queue of ``SafeJob`` that never hands its worker a poison item."""

    job_class = SafeJob

    def __init__(self, name: str = "default", *args: Any, **kwargs: Any) -> None:
        kwargs["job_class"] = SafeJob
        kwargs["serializer"] = SafeSerializer
        super().__init__(name, *args, **kwargs)

    @classmethod
    def lmove(cls, connection: Any, queue_key: str, timeout: int | None) -> Any:
        while True:
            result = super().lmove(connection, queue_key, timeout)
            if result is None or _readable(connection, queue_key, result[1], moved=True):
                return result

    @classmethod
    def lpop(cls, queue_keys: Sequence[str], timeout: int | None, connection: Any = None) -> Any:
        while True:
            result = super().lpop(queue_keys, timeout, connection=connection)
            if result is None:
                return None
            key = result[0].decode() if isinstance(result[0], bytes) else result[0]
            if _readable(connection, key, result[1], moved=False):
                return result

    @classmethod
    def _fetch_dequeued_job(
        cls,
        connection: Any,
        queue_key: str,
        job_id: str,
        job_class: Any = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> Any:
        if not is_job_id(job_id):
            return None  # not a job: left on the intermediate list for the reaper
        try:
            return super()._fetch_dequeued_job(
                connection, queue_key, job_id, SafeJob, SafeSerializer, death_penalty_class
            )
        except NoSuchJobError:
            return None
        except Exception as exc:  # a job hash RQ cannot read (non-UTF-8 fields, ...)
            key = SafeJob.key_for(job_id)
            raw = hash_bytes(connection, key)
            with connection.pipeline() as pipe:
                pipe.delete(key)
                pipe.lrem(intermediate_for_key(queue_key), 1, job_id)
                pipe.execute()
            _quarantine(connection, raw, key, f"job hash unreadable: {type(exc).__name__}")
            return None


def _settings() -> Settings | None:
    try:
        return load_settings()
    except Exception:  # the first job stops the worker with the reason (worker.jobs.for_job)
        return None


class SafeWorker(SimpleWorker):
    """RQ's SimpleWorker with ``SafeQueue``, ``SafeJob`` and ``SafeSerializer`` (whatever ``-j``,
    ``-S`` or ``--queue-class`` say), short result TTLs and redacted exception text."""

    job_class = SafeJob
    queue_class = SafeQueue
    failure_ttl: int | None = None
    _due: DueSet | None = None
    _due_polled: float = float("-inf")
    _due_checked: float = float("-inf")

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        listed = queues if isinstance(queues, list | tuple) else [queues]
        if kwargs.get("connection") is None:
            found = [q.connection for q in listed if isinstance(q, Queue)]
            if found:
                kwargs["connection"] = found[0]
        names = [q.name if isinstance(q, Queue) else str(q) for q in listed]
        kwargs.update(job_class=SafeJob, queue_class=SafeQueue, serializer=SafeSerializer)
        settings = _settings()
        self.settings = settings
        self.failure_ttl = settings.job_failure_ttl_s if settings else None
        if settings is not None:
            kwargs["default_result_ttl"] = settings.job_result_ttl_s
        super().__init__(names, *args, **kwargs)
        self._settings = settings
        if (
            settings is not None
            and self.connection is not None
            and settings.recovery_config().active
        ):
            # decisions wait (a delay, quiet hours): poll for those due; with neither, nothing
            # is scheduled, and the reaper moves what an earlier setting left
            self._due = DueSet(self.connection, Keys.from_settings(settings))

    @property
    def dequeue_timeout(self) -> int:
        """Waiting for a job, the worker wakes each second to move due decisions (docs/recovery.md)."""
        return 1 if self._due is not None else int(super().dequeue_timeout)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None:
            self.move_due()

    def move_due(self) -> int:
        """At most once per ``DUE_POLL_S``: the due decisions onto the queue as a
        ``handle_due`` job (``worker/schedule.py``); a Redis error waits for the next poll."""
        if self._due is None or self._settings is None:
            return 0
        mono = time.monotonic()
        if mono - self._due_polled < DUE_POLL_S:
            return 0
        self._due_polled = mono
        try:
            if mono - self._due_checked >= DUE_CHECK_S:
                self._due_checked = mono
                request_rebuild(
                    self._due, self.queues[0], job_timeout_s=self._settings.job_timeout_s
                )
            return move_due(
                self._due,
                self.queues[0],  # the worker's own queue (`sgr worker --queue` included)
                datetime.now(UTC),
                job_timeout_s=self._settings.job_timeout_s,
                max_attempts=self._settings.max_attempts,
            )
        except redis.RedisError as exc:
            log.warning("due_move_failed", error=str(exc)[:200])
            return 0

    def bootstrap(self, logging_level: str | None = "INFO", *args: Any, **kwargs: Any) -> None:
        """RQ's start-up, with its lines routed through the project's logging first
        (``SGR_LOG_FORMAT``, ``SGR_LOG_LEVEL``, whatever ``rq worker``'s own options said): its
        own handlers would print coloured text on stdout and stderr."""
        if self.settings is not None:
            json_logs = self.settings.log_format == "json"
            logging_level = self.settings.log_level
            configure(json_logs=json_logs, level=logging_level)
            route_stdlib(json_logs=json_logs, level=logging_level)
        super().bootstrap(logging_level, *args, **kwargs)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        text = redact_text(format_exc_info(exc_info))
        if routed_as_json():  # one line: the traceback is a field
            self.log.error(
                "job failed", extra={"job_id": job.id, "worker": self.name, "traceback": text}
            )
        else:
            self.log.error("Worker %s: job %s failed:\n%s", self.name, job.id, text)
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Any = None,
    ) -> None:
        if job.failure_ttl is None and self.failure_ttl is not None:
            job.failure_ttl = self.failure_ttl
        super().handle_job_failure(
            job, queue, started_job_registry, redact_text(exc_string), execution
        )
