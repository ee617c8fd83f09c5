"""The due set: abandonment decisions waiting for their time (docs/recovery.md).

A Redis sorted set (``Keys.due_decisions``: event id -> due time, Unix seconds) that workers poll
cheaply; the hot store's ``scheduled_decisions`` rows are the truth it is rebuilt from.

- After the commit that schedules a decision, the outbox adds it (``add``).
- ``sgr worker`` (``worker.safejob.SafeWorker``) takes what is due at most once a second in one
  script call (``ZRANGEBYSCORE`` and ``ZREM`` of what it found, atomically: two workers never take
  the same entry) and enqueues it at the queue's front as ``worker.jobs.handle_due`` jobs, which
  claim the rows in the hot store (a lease per job) and decide them through the one runner. ``sgr reap`` moves
  due entries too, so a fleet of stock ``rq worker`` processes needs one ``sgr reap --loop``.
- The reaper puts back what Redis lost or a dead worker held: every undecided row after a Redis
  restart (its ``run_id`` changed), and rows overdue by a claim's lease at each pass.

Why not RQ's scheduler (``enqueue_at``): it keeps scheduled jobs only in Redis (a Redis restart
without its AOF loses them, with nothing to rebuild from), needs a ``--with-scheduler`` worker,
and a job id does not deduplicate (two enqueues run twice); here the hot store holds each
decision once and its claim and outcome make it run once, whatever Redis forgets or repeats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import redis
import structlog
from rq import Retry

from worker.keys import Keys

log = structlog.get_logger("sgr.schedule")

HANDLE_DUE = "worker.jobs.handle_due"  # by name: the jobs module is layers above this one
TAKE_LIMIT = 200  # due entries taken per poll
JOB_SIZE = 50  # due decisions per job
# KEYS: the due set. ARGV: now (Unix seconds), limit. The due entries, removed: this caller's.
TAKE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return ids
"""


class DueSet:
    """The Redis side of the schedule: add, take what is due, rebuild."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.key = keys.due_decisions
        self.rebuilt_key = keys.due_rebuilt
        self.requested_key = keys.due_rebuild_requested
        self._take = client.register_script(TAKE_DUE)

    def add(self, items: Sequence[tuple[str, datetime]]) -> int:
        """Put decisions in the set (a decision already there keeps one entry)."""
        if not items:
            return 0
        return int(cast(int, self.client.zadd(self.key, {e: due.timestamp() for e, due in items})))

    def take_due(self, now: datetime, limit: int = TAKE_LIMIT) -> list[str]:
        """The event ids due by ``now``, taken off the set (nobody else gets them)."""
        found = cast(list[Any], self._take(keys=[self.key], args=[now.timestamp(), limit]))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in found]

    def size(self) -> int:
        return int(cast(int, self.client.zcard(self.key)))

    def next_due(self) -> float | None:
        """The soonest due time in the set (Unix seconds), or None."""
        first = cast(list[Any], self.client.zrange(self.key, 0, 0, withscores=True))
        return float(first[0][1]) if first else None

    def needs_rebuild(self, run_id: str) -> bool:
        """Whether the set was not yet rebuilt since this Redis server started (``run_id``)."""
        seen = self.client.get(self.rebuilt_key)
        return (seen.decode() if isinstance(seen, bytes) else seen) != run_id

    def mark_rebuilt(self, run_id: str) -> None:
        self.client.set(self.rebuilt_key, run_id)

    def lost(self) -> bool:
        """Whether this Redis has no record of a rebuild (it restarted empty, or never had one):
        one ``EXISTS``."""
        return not self.client.exists(self.rebuilt_key)


def request_rebuild(due: DueSet, queue: Any, *, job_timeout_s: int) -> bool:
    """A Redis without the rebuild's record (it came back empty): one worker of the fleet puts
    one ``handle_due([])`` job at the queue's front, which rebuilds the set from the hot store
    (a worker process that has run no job yet has no reaper to do it). True if this call did."""
    if not due.lost() or not due.client.set(due.requested_key, "1", nx=True, ex=30):
        return False
    queue.enqueue(HANDLE_DUE, [], at_front=True, job_timeout=job_timeout_s)
    log.warning("due_rebuild_requested")
    return True


def move_due(
    due: DueSet,
    queue: Any,
    now: datetime,
    *,
    job_timeout_s: int,
    max_attempts: int,
    limit: int = TAKE_LIMIT,
) -> int:
    """Take what is due and enqueue it as ``handle_due`` jobs on ``queue`` (an RQ queue); the
    number of decisions moved. If enqueueing fails, they go back in the set."""
    taken = due.take_due(now, limit)
    for start in range(0, len(taken), JOB_SIZE):
        chunk = taken[start : start + JOB_SIZE]
        try:
            queue.enqueue(
                HANDLE_DUE,
                chunk,
                at_front=True,  # due now: ahead of the events waiting behind it
                job_timeout=job_timeout_s,
                retry=Retry(max=max_attempts - 1) if max_attempts > 1 else None,
            )
        except redis.RedisError:
            with contextlib.suppress(redis.RedisError):  # else the reaper puts them back
                due.add([(e, now) for e in chunk])
            raise
    if taken:
        log.info("due_moved", decisions=len(taken))
    return len(taken)
