"""The one runner: every job (one event, a batch, a ``sgr negotiate`` turn) goes through ``run``.
A single event is a batch of one.

For the events given, in order:

- waves: an event goes one wave after the last earlier event that shares its session, its
  customer or its event id, so that it sees that one committed (a batch of distinct sessions is
  one wave);
- per wave, one read of every event's context (``HotStore.event_contexts``): an event that already
  has an outcome is a replay; the others go to their handler (``worker/handlers``), which decides
  a plan: the stages before the engine;
- the plans that need the engine ask it at the same time, at most ``concurrency`` in flight;
- one write transaction per wave: the wave's customers locked (sorted, so two runners never wait
  on each other in a cycle), then each plan's ``write`` under a savepoint, so one event failing
  or found already recorded undoes its own writes only;
- one publication for the run (the outbox): the new offers and turns, void notices (an order
  closed an offer), decisions scheduled for later (the due set), and whatever a replayed event
  left unpublished;
- a scheduled abandonment (docs/recovery.md) replays as ``scheduled`` until a due job
  (``JobInfo.due``, ``worker.jobs.handle_due``) runs it here again: its handler then decides it
  on the session's newest state.

The guarantees live here, so every path has them: one event's failure never fails the others
(``run`` returns, per event, its outcome or the exception it raised); a store that cannot be
written (``StoreUnavailable``) and the job's timeout end the whole run at once (the job goes back
to the queue, or fails as a whole), never counted as one event's failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from rq.timeouts import JobTimeoutException

from stores.base import StoreUnavailable
from worker.deps import Deps, JobInfo
from worker.domain.conversation import Turn
from worker.domain.events import CartEvent
from worker.domain.model import Offer, Outcome, RecordedOutcome, VoidNotice
from worker.engines.policy import PolicyEngine
from worker.handlers import handler_for
from worker.handlers.base import AlreadyRecorded, Plan, Written
from worker.stopwatch import Stopwatch

log = structlog.get_logger("sgr.runner")

Result = Outcome | Exception
# Not one event's failure: the whole run stops (the job is retried or goes back to the queue).
FATAL: tuple[type[BaseException], ...] = (StoreUnavailable, JobTimeoutException)


@dataclass
class Item:
    """One event of the run on its way through the stages."""

    event: CartEvent
    watch: Stopwatch
    plan: Plan | None = None
    written: Written | None = None
    replay_of: RecordedOutcome | None = None
    result: Result | None = None
    published: bool = False


def waves(events: Sequence[CartEvent]) -> list[list[int]]:
    """The run's positions in waves: an event goes one wave after the last earlier event that
    shares its session, its customer or its event id, so that it sees that one committed."""
    last: dict[tuple[str, str], int] = {}
    out: list[list[int]] = []
    for i, event in enumerate(events):
        keys = (("e", event.event_id), ("s", event.session_id), ("u", event.user_id))
        wave = max((last[k] + 1 for k in keys if k in last), default=0)
        for k in keys:
            last[k] = wave
        if wave == len(out):
            out.append([])
        out[wave].append(i)
    return out


def _guarded(item: Item, step: Any, *args: Any) -> None:
    """Run one event's step; its exception becomes its result, unless it ends the run."""
    try:
        step(*args)
    except FATAL:
        raise
    except Exception as exc:
        log.warning("event_step_failed", event_id=item.event.event_id, error=repr(exc)[:300])
        item.result = exc


def _write_as_answered(
    deps: Deps,
    items: list[Item],
    futures: dict[Future[None], Item],
    job: JobInfo,
    group: int,
) -> None:
    """While the engine's requests are in flight, the wave's other events are written; then the
    answered ones in groups of half the pool as they arrive, each group one transaction published
    at once: the pool stays busy while a group commits (the events of a wave are independent of
    each other by construction)."""
    waiting = {id(i) for i in futures.values()}
    rest = [i for i in items if i.plan is not None and i.result is None and id(i) not in waiting]
    if rest:
        _write_all(deps, rest, job)
        _publish_early(deps, rest)
    ready: list[Item] = []
    for done, future in enumerate(as_completed(futures), start=1):
        future.result()  # what ends the run (FATAL) ends it here
        item = futures[future]
        if item.result is None:
            ready.append(item)
        if ready and (len(ready) >= group or done == len(futures)):
            _write_all(deps, ready, job)
            _publish_early(deps, ready)
            ready = []


def _write_all(deps: Deps, items: list[Item], job: JobInfo) -> None:
    """One write transaction for the wave: its customers locked, each plan under a savepoint."""
    try:
        with deps.hot.transaction():
            for user in sorted({i.event.user_id for i in items}):
                deps.hot.lock_customer(user)
            for item in items:
                assert item.plan is not None
                try:
                    with deps.hot.savepoint():
                        item.written = item.plan.write(deps, job, item.watch)
                except AlreadyRecorded:  # another run recorded it first: its outcome stands
                    item.replay_of = deps.hot.get_outcome(item.event.event_id)
                except FATAL:
                    raise
                except Exception as exc:
                    log.warning(
                        "event_write_failed", event_id=item.event.event_id, error=repr(exc)[:300]
                    )
                    item.result = exc
    except FATAL:
        raise
    except Exception as exc:  # the transaction itself failed: nothing of the wave is committed
        for item in items:
            item.written, item.replay_of = None, None
            item.result = exc


def _wave(
    deps: Deps, items: list[Item], job: JobInfo, pool: ThreadPoolExecutor | None, size: int
) -> None:
    """One wave: one read, the plans, the engine asked concurrently, one write transaction."""
    try:
        contexts = deps.hot.event_contexts(
            [(i.event.event_id, i.event.session_id, i.event.user_id) for i in items]
        )
    except FATAL:
        raise
    except Exception as exc:
        for item in items:
            item.result = exc
        return
    # the rules engine answers in microseconds: a thread would cost more than it saves
    concurrent = pool is not None and len(items) > 1 and not isinstance(deps.engine, PolicyEngine)
    futures: dict[Future[None], Item] = {}
    for item, ctx in zip(items, contexts, strict=True):
        # recorded: a replay; a scheduled decision runs only in the job that claimed it (due)
        if ctx.outcome is not None and not (job.due and ctx.outcome.outcome == "scheduled"):
            item.replay_of = ctx.outcome
            continue

        def decide(item: Item = item, ctx: Any = ctx) -> None:
            item.plan = handler_for(item.event)(deps, item.event, ctx, item.watch)

        _guarded(item, decide)
        if concurrent and item.plan is not None and item.result is None and item.plan.needs_engine:
            assert pool is not None  # asked as soon as decided: the pool fills while we decide
            futures[pool.submit(_guarded, item, item.plan.ask, deps)] = item
    if futures:
        _write_as_answered(deps, items, futures, job, max(1, size // 2))
        return
    asking = [i for i in items if i.plan is not None and i.result is None and i.plan.needs_engine]
    for item in asking:  # one at a time (the job's timeout reaches this thread): then one write
        assert item.plan is not None
        _guarded(item, item.plan.ask, deps)
    todo = [i for i in items if i.plan is not None and i.result is None]
    if todo:
        _write_all(deps, todo, job)
        _publish_early(deps, todo)


def _publish(deps: Deps, items: list[Item]) -> None:
    """Publication of what ``items`` committed: new offers in one round trip, new turns, and
    whatever a replayed event left unpublished (after a crash between commit and publication).
    Each item is published once: by the write that committed it, or at the end as a replay."""
    offers: list[Offer] = []
    turns: list[Turn] = []
    due: list[tuple[str, datetime]] = []
    voids: list[VoidNotice] = []
    for item in items:
        if item.written is not None:
            if item.written.due is not None:
                due.append(item.written.due)
            voids.extend(item.written.voids)
            if item.written.turn is not None:
                turns.append(item.written.turn)
            elif item.written.offer is not None:
                offers.append(item.written.offer)
    pending = [i.replay_of.offer_id for i in items if i.replay_of and i.replay_of.offer_id]
    if pending:
        offers += [o for o in deps.hot.get_offers(pending) if o.published_at is None]
    deps.outbox.publish_many(offers)
    deps.outbox.schedule(due)
    deps.outbox.publish_voids(voids)
    for turn in turns:
        deps.outbox.publish_turn(turn)
    for item in items:
        if item.replay_of is not None and item.event.type.value == "customer_message":
            deps.outbox.publish_pending_turn(item.event.event_id)
        if item.written is not None and (item.written.offer or item.written.turn):
            item.watch.lap("publish")
        item.published = True


def _publish_early(deps: Deps, items: list[Item]) -> None:
    """Publish what a write committed at once; if that fails (Redis down), the run goes on
    committing and ``run`` publishes what is left at its end (or raises then)."""
    try:
        _publish(deps, items)
    except Exception as exc:
        log.warning("publish_deferred", error=repr(exc)[:200])


def run(
    events: Sequence[CartEvent],
    deps: Deps,
    job: JobInfo | None = None,
    concurrency: int = 1,
) -> list[Result]:
    """Turn validated events into their outcomes (each idempotent by ``event_id``), in the order
    given: per event its ``Outcome``, or the exception its processing raised (the others are done
    regardless). Raises only what ends the run (``FATAL``) or a failed publication (Redis): every
    outcome is committed by then, and a re-run replays them and publishes what is still waiting."""
    job = job or JobInfo()
    items = [Item(e, Stopwatch()) for e in events]
    size = min(concurrency, len(items))
    pool = ThreadPoolExecutor(size, thread_name_prefix="sgr-llm") if size > 1 else None
    try:
        for positions in waves(events):
            _wave(deps, [items[p] for p in positions], job, pool, size)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    _publish(deps, [i for i in items if not i.published])
    out: list[Result] = []
    for item in items:
        if item.result is not None:
            out.append(item.result)
        elif item.written is not None:
            out.append(item.written.outcome)
        else:
            prior = item.replay_of
            assert prior is not None
            log.info("event_replayed", event_id=item.event.event_id, outcome=prior.outcome)
            out.append(
                Outcome(
                    item.event.event_id,
                    prior.outcome,
                    prior.reason,
                    prior.offer_id,
                    replayed=True,
                    due_at=prior.due_at,
                )
            )
    return out


def process(event: CartEvent, deps: Deps, job: JobInfo | None = None) -> Outcome:
    """One event to its one outcome (a run of one); raises what its processing raised."""
    result = run([event], deps, job)[0]
    if isinstance(result, Exception):
        raise result
    return result


@dataclass(frozen=True)
class TurnResult:
    """A negotiation turn as ``sgr negotiate`` shows it: the outcome, the recorded turn, the
    offer made, and the engines that routed and priced it."""

    outcome: Outcome
    turn: Turn | None
    offer: Offer | None
    route_engine: str | None = None
    price_engine: str | None = None


def run_turn(event: CartEvent, deps: Deps, job: JobInfo | None = None) -> TurnResult:
    """One customer message through the runner, with what it recorded read back."""
    outcome = process(event, deps, job)
    turn = deps.hot.get_turn(event.event_id)
    offer = deps.hot.get_offer(outcome.offer_id) if outcome.offer_id else None
    engines = (turn.reasoning or {}).get("engines") or {} if turn is not None else {}
    return TurnResult(outcome, turn, offer, engines.get("route"), engines.get("price"))
