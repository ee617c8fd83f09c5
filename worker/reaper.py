"""The reaper: re-runs jobs whose worker died (SIGKILL, OOM, power loss), publishes offers still in
the outbox, and turns jobs that ran out of attempts into dead letters.

What rq 3.0.0 does by itself (measured with a SIGKILLed ``rq worker -w rq.worker.SimpleWorker``
and read in ``rq/registry.py``): the killed worker's job stays ``STARTED`` in the queue's
``StartedJobRegistry`` with a score of start + job timeout + 60 s (180 s for our 120 s timeout),
and the dead worker's key stays registered as "busy" for the same time. ``StartedJobRegistry.
cleanup()`` re-enqueues an expired job if it still has ``retries_left`` (our producer enqueues with
``Retry(max=max_attempts - 1)``) and otherwise moves it to the ``FailedJobRegistry`` with
``AbandonedJobError`` and no dead letter. That cleanup only runs in a worker's maintenance pass: at
worker start-up and then every 10 minutes (``maintenance_interval``). So RQ's own recovery is sound
about attempts but takes between 3 and 13 minutes, and a job out of attempts vanishes silently. A
new worker started right after the kill does not re-run the job (its start-up cleanup finds the
entry unexpired).

What this module adds, without changing how RQ runs jobs:
- A started job whose worker is known dead is made due at once: the worker's key is gone, or the
  worker ran on this host and its PID no longer exists (or is a zombie). Its registry entry is
  given score 0 and RQ's own ``StartedJobRegistry.cleanup`` is run for exactly those entries, so
  the retry accounting (``retries_left``) stays RQ's. A job with no attempt left is written as a
  dead letter first (unless its event already has an outcome). Re-running is safe: ``process`` is
  idempotent by ``event_id`` and publication is exactly-once per offer id.
- RQ's time-based cleanup is run as well (it covers workers on other hosts and lost keys).
- A job a dead worker took off the queue but never registered (RQ's "intermediate" list) is
  re-enqueued after ``stuck_after_s`` (RQ itself waits a minute and runs that check every 10).
- Jobs that RQ itself moved to the failed registry as abandoned are swept into dead letters.
- The outbox is flushed: offers, replies and outcomes committed but not yet on their stream are
  published, and those published in the last 15 minutes whose stream entry Redis lost (a crash)
  are published again.
- Once a minute, the offers stream loses its entries older than ``SGR_OFFERS_STREAM_MAX_AGE_HOURS``
  and the bridge's rejected list its oldest beyond ``SGR_REJECTED_MAX`` (``worker/retention.py``).

It runs as a daemon thread in each worker process every ``SGR_REAP_INTERVAL_S`` seconds (started
when the process's runtime is built: at once for ``sgr worker``, at its first job for a stock
``rq worker``), and as ``sgr reap [--loop]``. A Redis lock lets one reaper act at a time.

Limit: the PID check assumes workers that report this host's name share this PID namespace
(containers with ``network_mode: host`` do not): there, set ``SGR_REAP_INTERVAL_S=0`` in the
workers and run ``sgr reap --loop`` inside each worker container, or rely on the time-based path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import redis
import structlog

from worker import deadletter, rqcompat
from worker.deps import Deps
from worker.keys import Keys
from worker.retention import trim_redis
from worker.rqcompat import DeserializationError, Execution, Job, JobStatus, NoSuchJobError
from worker.runtime import Runtime
from worker.safejob import SafeJob, SafeQueue, hash_bytes
from worker.schedule import DueSet, move_due

log = structlog.get_logger("sgr.reaper")

REPUBLISH_WINDOW = timedelta(minutes=15)  # how far back the reaper checks the stream kept offers
# Redis loses acknowledged writes only when it restarts (a crash between AOF fsyncs) or fails over;
# both change its run_id. The reaper checks the stream when the run_id changes, and at least this
# often anyway, not on every pass (the check reads every offer of the window).
REPUBLISH_CHECK_EVERY_S = 300.0
SWEPT_META = "sgr_swept"
TRIM_EVERY_S = 60.0  # the offers stream by age and the rejected list by size (worker/retention.py)


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)  # job ids
    dead_lettered: list[str] = field(default_factory=list)  # event ids
    swept: list[str] = field(default_factory=list)  # event ids from the failed registry
    dead_workers: list[str] = field(default_factory=list)
    published: int = 0
    republished: int = 0  # offers Redis lost after they were published (a crash of Redis)
    skipped: bool = False  # another reaper held the lock
    due_restored: int = 0  # scheduled decisions put back in the due set from the hot store
    due_moved: int = 0  # due decisions moved onto the queue

    def as_dict(self) -> dict[str, Any]:
        return {
            "due_restored": self.due_restored,
            "due_moved": self.due_moved,
            "requeued": len(self.requeued),
            "dead_lettered": len(self.dead_lettered),
            "swept": len(self.swept),
            "dead_workers": len(self.dead_workers),
            "published": self.published,
            "republished": self.republished,
            "skipped": self.skipped,
        }


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists here and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _payload(job: Job) -> Any:
    return job.args[0] if job.args else None


def _fetch(job_id: str, client: redis.Redis) -> Job:
    """A job as the safe worker reads it (plain data only: ``worker/safejob.py``)."""
    return SafeJob.fetch(job_id, connection=client)


class Reaper:
    """One reaping pass per ``reap()``, with the stores and clients of ``runtime``."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        hostname: str | None = None,
        lock_timeout_s: float = 60.0,
        sweep_limit: int = 500,
        stuck_after_s: float = 10.0,
    ) -> None:
        self.client = runtime.client
        self.queue = SafeQueue(runtime.keys.queue, connection=runtime.client)
        self.runtime = runtime
        self.hostname = hostname or socket.gethostname()
        self.lock_timeout_s = lock_timeout_s
        self.sweep_limit = sweep_limit
        self.stuck_after_s = stuck_after_s
        self._redis_run_id: str | None = None
        self._checked_at = float("-inf")
        self._trimmed_at = float("-inf")

    @property
    def deps(self) -> Deps:
        return self.runtime.deps

    # --- finding the dead -------------------------------------------------------------------
    def worker_dead(self, worker_name: str, cache: dict[str, bool]) -> bool:
        if worker_name in cache:
            return cache[worker_name]
        worker = rqcompat.find_worker(self.client, worker_name) if worker_name else None
        if worker is None:
            dead = bool(worker_name)  # key expired: the worker stopped heart-beating long ago
        else:
            dead = worker.hostname == self.hostname and not pid_alive(worker.pid or 0)
            if dead:
                worker.register_death()  # so `rq info` stops listing it as busy
        if dead:
            log.warning("worker_dead", worker=worker_name, host=worker and worker.hostname)
        cache[worker_name] = dead
        return dead

    def abandoned(self) -> list[tuple[Job, Execution, str]]:
        """Started jobs whose worker is dead, with the execution and the worker's name."""
        found: list[tuple[Job, Execution, str]] = []
        cache: dict[str, bool] = {}
        for job_id, execution_id in rqcompat.started_entries(self.queue):
            try:
                job = _fetch(job_id, self.client)
                execution = rqcompat.fetch_execution(self.client, job_id, execution_id)
            except Exception:  # the job finished meanwhile or its data expired: RQ's cleanup
                continue
            # QUEUED here means the worker died (e.g. on a Redis outage) between creating the
            # execution and marking the job started: RQ's cleanup skips it, so it is ours too.
            if job.get_status(refresh=False) not in (JobStatus.STARTED, JobStatus.QUEUED):
                continue
            if self.worker_dead(execution.worker_name, cache):
                found.append((job, execution, execution.worker_name))
        return found

    # --- acting ----------------------------------------------------------------------------
    def _dead_letter(self, job: Job, error: str, kind: str = "abandoned") -> list[str]:
        """Record a dead letter for each of the job's events (one for an event job, one per
        event with its own payload for a batch job) unless the event already has an outcome;
        returns the event ids dead-lettered. A job whose data cannot be read is moved aside as a
        poison item (its raw data, base64)."""
        try:
            payload = _payload(job)
            func_name = job.func_name or ""
            unreadable = getattr(job, "unreadable", None)
        except DeserializationError as exc:
            unreadable = f"job data unreadable: {exc.__cause__}"
        if unreadable is not None:
            where = rqcompat.job_key(job.id)
            return [self._quarantine(job.data, where, f"{error}; {unreadable}")]
        if func_name.endswith("handle_due"):
            return []  # scheduled decisions: the hot store keeps them; restore_due puts them back
        batch = func_name.endswith("handle_batch") and isinstance(payload, list)
        places: list[tuple[Any, int | None]] = (
            list(zip(payload, range(len(payload)), strict=True)) if batch else [(payload, None)]
        )
        done: list[str] = []
        for item, index in places:
            event_id = deadletter.payload_event_id(item, job.id, index)
            if self.deps.hot.get_outcome(event_id) is not None:
                continue
            if deadletter.record(
                self.deps.hot,
                self.runtime.dead_letters,
                item,
                error,
                job_id=job.id,
                attempts=self.runtime.settings.max_attempts - (job.retries_left or 0),
                now=self.deps.clock(),
                index=index,
                kind=kind,
                sink=self.deps.outbox,
            ):
                done.append(event_id)
        return done

    def _quarantine(self, raw: bytes, source: str, reason: str) -> str:
        return deadletter.quarantine(
            self.runtime.dead_letters,
            self.runtime.keys.queue_alerts,
            raw,
            source,
            reason,
            self.deps.clock(),
        )

    def reap(self) -> ReapReport:
        report = ReapReport()
        lock = self.client.lock(
            self.runtime.keys.reaper_lock, timeout=self.lock_timeout_s, blocking=False
        )
        if not lock.acquire():
            report.skipped = True
            return report
        try:
            self._requeue_abandoned(report)
            self._unstick_intermediate(report)
            rqcompat.run_started_cleanup(self.queue)  # RQ's own, time-based path
            self._sweep_failed(report)
            report.published = self.deps.outbox.flush()
            run_id = str(cast(dict[str, Any], self.client.info("server")).get("run_id"))
            report.due_restored, report.due_moved = self.restore_due(run_id)
            due = time.monotonic() - self._checked_at >= REPUBLISH_CHECK_EVERY_S
            if run_id != self._redis_run_id or due:
                since = self.deps.clock() - REPUBLISH_WINDOW
                report.republished = self.deps.outbox.republish_lost(since)
                report.republished += self._republish_lost_replies(since)
                report.republished += self.deps.outbox.republish_lost_outcomes(since)
                self._redis_run_id, self._checked_at = run_id, time.monotonic()
            if time.monotonic() - self._trimmed_at >= TRIM_EVERY_S:
                settings, keys = self.runtime.settings, self.runtime.keys
                trim_redis(self.client, keys, settings, self.deps.clock())
                self._trimmed_at = time.monotonic()
        finally:
            # An expired lock is harmless: the next pass takes it again.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        counts = {
            "requeued": len(report.requeued),
            "dead_lettered": len(report.dead_lettered),
            "swept": len(report.swept),
            "published": report.published,
            "republished": report.republished,
            "due_restored": report.due_restored,
        }
        if any(counts.values()):
            with self.client.pipeline() as pipe:
                for name, n in counts.items():
                    if n:
                        pipe.hincrby(self.runtime.keys.reaper_stats, name, n)
                pipe.execute()
            log.warning("reaped", **counts, dead_workers=report.dead_workers)
        return report

    def restore_due(self, run_id: str | None = None) -> tuple[int, int]:
        """The due set kept whole (docs/recovery.md): after a Redis restart (a new ``run_id``)
        every undecided decision goes back in from the hot store; at every pass, those overdue
        by a claim's lease (lost between Redis and a job, or held by a job that died); then what
        is due is moved onto the queue (what ``sgr worker`` does each second; this covers a
        fleet of stock ``rq worker`` processes). Returns (restored, moved)."""
        settings = self.runtime.settings
        if run_id is None:
            run_id = str(cast(dict[str, Any], self.client.info("server")).get("run_id"))
        due = DueSet(self.client, self.runtime.keys)
        now = self.deps.clock()
        lease = settings.claim_lease_s
        rebuild = due.needs_rebuild(run_id)
        until = now + timedelta(days=3660) if rebuild else now - timedelta(seconds=lease)
        rows = self.deps.hot.undecided_due(until, now, lease)
        restored = due.add(rows)
        if rebuild:
            due.mark_rebuilt(run_id)
        if restored:
            log.warning("due_restored", decisions=restored, rebuild=rebuild)
        moved = move_due(
            due,
            self.queue,
            now,
            job_timeout_s=settings.job_timeout_s,
            max_attempts=settings.max_attempts,
        )
        return restored, moved

    def _republish_lost_replies(self, since: Any) -> int:
        """Negotiation replies (turns without an offer) published since ``since`` whose stream
        entry Redis lost are published again, as ``republish_lost`` does for offers (a turn
        with an offer leaves as that offer, which ``republish_lost`` covers)."""
        replies = {
            t.reply_id: t for t in self.deps.hot.recently_published_turns(since) if not t.offer_id
        }
        publisher = self.deps.outbox.publisher
        lost = publisher.missing(list(replies)) if replies else []
        for reply_id in lost:
            publisher.publish_entry(reply_id, replies[reply_id].stream_entry())
        if lost:
            log.warning("replies_republished", replies=len(lost))
        return len(lost)

    def _requeue_abandoned(self, report: ReapReport) -> None:
        found = self.abandoned()
        if not found:
            return
        for job, execution, worker_name in found:
            if worker_name not in report.dead_workers:
                report.dead_workers.append(worker_name)
            if job.retries_left:
                report.requeued.append(job.id)
            else:
                attempts = self.runtime.settings.max_attempts
                error = (
                    f"AbandonedJobError: worker {worker_name} died running the job; "
                    f"{attempts} attempt(s) used"
                )
                report.dead_lettered.extend(self._dead_letter(job, error))
            if job.get_status(refresh=False) == JobStatus.QUEUED:
                job.set_status(JobStatus.STARTED)  # so that RQ's cleanup takes it
                rqcompat.remove_intermediate(self.client, self.queue.name, job.id)
            # Due now: RQ's cleanup below retries it (or fails it) with its own bookkeeping.
            rqcompat.make_due(self.client, self.queue, execution)
        rqcompat.run_started_cleanup(self.queue, due_only=True)
        log.warning(
            "abandoned_jobs_recovered",
            requeued=report.requeued,
            dead_lettered=report.dead_lettered,
        )

    def _unstick_intermediate(self, report: ReapReport) -> None:
        """A job a worker moved off the queue but never registered as started (it died in
        between) sits in RQ's intermediate list; RQ looks there every 10 minutes and only after a
        minute. Here: once seen twice ``stuck_after_s`` apart, it is retried or dead-lettered."""
        name = self.queue.name
        started = rqcompat.started_job_ids(self.queue)
        for raw in rqcompat.intermediate_raw(self.client, name):
            try:
                job_id = raw.decode("utf-8")
            except UnicodeDecodeError as exc:  # poison: moved aside at once, never decoded
                rqcompat.remove_intermediate(self.client, name, raw)
                reason = f"not UTF-8 ({exc.reason} at byte {exc.start})"
                report.dead_lettered.append(
                    self._quarantine(raw, rqcompat.intermediate_key(name), reason)
                )
                continue
            if job_id in started or rqcompat.mark_first_seen(self.queue, job_id):
                continue
            first = rqcompat.first_seen(self.queue, job_id)
            if first is None or time.time() - first.timestamp() < self.stuck_after_s:
                continue
            try:
                job = _fetch(job_id, self.client)
            except (NoSuchJobError, ValueError):  # ValueError: not even a valid job id
                event_id = self._dead_letter_foreign(job_id)
                rqcompat.remove_intermediate(self.client, name, job_id)
                if event_id:
                    report.dead_lettered.append(event_id)
                continue
            except Exception as exc:  # a job hash RQ cannot read: moved aside
                rqcompat.remove_intermediate(self.client, name, job_id)
                report.dead_lettered.append(self._poison_hash(job_id, exc))
                continue
            if job.get_status(refresh=False) != JobStatus.QUEUED:
                continue  # RQ's own cleanup deals with the rest
            with self.client.pipeline() as pipe:
                rqcompat.remove_intermediate(pipe, name, job_id)
                if job.retries_left:
                    job.retry(self.queue, pipe)
                    report.requeued.append(job_id)
                else:
                    job.set_status(JobStatus.FAILED, pipeline=pipe)
                pipe.execute()
            if not job.retries_left and job_id not in report.requeued:
                report.dead_lettered.extend(
                    self._dead_letter(job, "worker died before starting the job")
                )

    def _poison_hash(self, job_id: str, exc: Exception) -> str:
        """A job hash RQ cannot read: its fields kept in a dead letter, the hash deleted."""
        key = rqcompat.job_key(job_id)
        raw = hash_bytes(self.client, key)
        self.client.delete(key)
        return self._quarantine(raw, key, f"job hash unreadable: {type(exc).__name__}")

    def _dead_letter_foreign(self, item: str) -> str | None:
        """An item on the queue's list that is no RQ job: something other than RQ pushed it (a
        producer that skipped ``enqueue_events``). It becomes a dead letter with the item as its
        payload (parsed when it is JSON, so ``sgr dead-letters requeue`` can send it properly)."""
        if self.client.exists(rqcompat.job_key(item)):
            return None  # a job that appeared meanwhile
        try:
            payload: Any = deadletter.parse_item(item)
        except deadletter.PoisonItem:
            payload = item[:4096]
        digest = hashlib.sha256(item.encode()).hexdigest()[:16]
        body = (
            payload
            if isinstance(payload, dict)
            else {"event_id": f"raw:{digest}", "payload": payload}
        )
        event_id = deadletter.payload_event_id(body, f"raw:{digest}")
        if self.deps.hot.get_outcome(event_id) is not None:
            return None
        deadletter.record(
            self.deps.hot,
            self.runtime.dead_letters,
            body,
            f"not an RQ job: {item[:80]!r} was pushed onto {self.queue.key} directly; send events "
            "with enqueue_events, `sgr produce` or `sgr bridge`",
            job_id=f"raw:{digest}",
            attempts=1,
            now=self.deps.clock(),
            kind="foreign_item",
            sink=self.deps.outbox,
        )
        log.warning("foreign_queue_item", event_id=event_id, item=item[:80])
        return event_id

    def _sweep_failed(self, report: ReapReport) -> None:
        """Jobs in the failed registry (out of attempts: abandoned, timed out, or failed) leave a
        dead letter per event that has no outcome yet: a job stopped by its timeout or killed
        never reached its own dead-lettering, and each event of a batch gets its own."""
        for job_id in rqcompat.failed_job_ids(self.queue, self.sweep_limit):
            try:
                job = _fetch(job_id, self.client)
            except NoSuchJobError:
                continue
            except Exception as exc:  # a job hash RQ cannot read: moved aside, out of the registry
                self.queue.failed_job_registry.remove(job_id)
                report.swept.append(self._poison_hash(job_id, exc))
                continue
            if job.meta.get(SWEPT_META):
                continue
            info = rqcompat.exc_info(job)
            last = info.splitlines()[-1] if info else "failed"
            if "Abandoned" in info or "intermediate queue" in info:
                error, kind = f"abandoned, out of attempts: {info[:300]}", "abandoned"
            else:
                error, kind = f"out of attempts: {last[:300]}", "out_of_attempts"
            report.swept.extend(self._dead_letter(job, error, kind))
            job.meta[SWEPT_META] = 1
            job.save_meta()


def reaper_for(runtime: Runtime) -> Reaper:
    """A reaper with its own Redis client and hot-store connection (safe to use from a thread)."""
    return Reaper(runtime.with_own_connections())


def run_forever(reaper: Reaper, interval_s: float, stop: threading.Event | None = None) -> None:
    """Reap every ``interval_s`` (with jitter) until ``stop`` is set; errors are logged, not fatal
    (Redis may be restarting)."""
    stop = stop or threading.Event()
    while not stop.wait(interval_s * (0.75 + random.random() / 2)):
        try:
            reaper.reap()
        except Exception as exc:
            log.warning("reap_failed", error=f"{type(exc).__name__}: {exc}"[:300])


_started: dict[int, threading.Thread] = {}


def start_background(runtime: Runtime) -> threading.Thread | None:
    """Start this process's reaper thread once (per PID); None when disabled."""
    interval = runtime.settings.reap_interval_s
    if interval <= 0 or os.getpid() in _started:
        return _started.get(os.getpid())
    reaper = reaper_for(runtime)
    thread = threading.Thread(
        target=run_forever, args=(reaper, interval), name="sgr-reaper", daemon=True
    )
    thread.start()
    _started[os.getpid()] = thread
    return thread


def stats(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """The reapers' counters so far (a hash in Redis)."""
    raw = client.hgetall(keys.reaper_stats)
    return {k.decode(): int(v) for k, v in raw.items()}  # type: ignore[union-attr]
