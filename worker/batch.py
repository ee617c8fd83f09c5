"""Many cart events in one job: the pipeline's stages (``worker/pipeline.py``) with one read, one
write transaction and one publication per batch, and the LLM asked for the eligible carts
concurrently.

Each event still ends in its own outcome, exactly as ``pipeline.process`` would give it:

- one read of every event's context (``HotStore.event_contexts``), then per event the same
  stages (facts, gate, history, cap, the engine's request);
- the eligible events' requests go to the engine at the same time, at most ``concurrency`` in
  flight (the engine's own timeouts, retries, fallback and circuit breaker apply to each);
- one write transaction for every event's state, outcome and offer, in batch order, each event
  under a savepoint (``pipeline.commit_in_transaction``: the rules asked again on what is
  committed), so one event failing undoes its own writes only;
- one publication round trip for the batch's offers (``Outbox.publish_many``).

Order: the events of one session (or one customer, or one event id given twice) are split into
"waves" in batch order: a later event of a session is read, decided and committed after the
earlier one's commit, as if it came in the next job. A batch of distinct sessions is one wave.

One event's failure never fails the others: ``process_batch`` returns, per event, its outcome or
the exception it raised. A re-run of the batch (a crash, a retry) replays the events already done
as no-ops and publishes any of their offers still waiting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from worker.domain import rules
from worker.domain.events import CartEvent
from worker.domain.model import EventContext, Offer, Outcome
from worker.engines.base import OfferRequest
from worker.engines.policy import PolicyEngine
from worker.pipeline import (
    Checked,
    Deps,
    JobInfo,
    ask,
    cap,
    check,
    commit_in_transaction,
    gate,
    history,
    offer_request,
    outcome_of,
)
from worker.stopwatch import Stopwatch

log = structlog.get_logger("sgr.batch")

Result = Outcome | Exception


@dataclass
class Item:
    """One event of the batch on its way through the stages."""

    index: int
    event: CartEvent
    watch: Stopwatch
    facts: rules.Facts | None = None
    decision: rules.Decision | None = None
    request: OfferRequest | None = None
    checked: Checked | None = None
    replay_of: EventContext | None = None
    offer: Offer | None = None
    result: Result | None = None


def waves(events: Sequence[CartEvent]) -> list[list[int]]:
    """The batch's positions in waves: an event goes one wave after the last earlier event that
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


_pool: tuple[int, int, ThreadPoolExecutor] | None = None


def _executor(size: int) -> ThreadPoolExecutor:
    """This process's pool of ``size`` threads for engine requests (made once, not per batch)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid() or _pool[1] != size:
        _pool = (os.getpid(), size, ThreadPoolExecutor(size, thread_name_prefix="sgr-llm"))
    return _pool[2]


def _ask_all(deps: Deps, items: list[Item], concurrency: int) -> None:
    """Ask the engine for every item's request, at most ``concurrency`` at a time, and check each
    answer as it comes (``pipeline.ask`` then ``pipeline.check``, in the asking thread)."""

    def one(item: Item) -> None:
        assert item.request is not None and item.facts is not None
        assert item.decision is not None
        try:
            reply, problems = ask(deps, item.request)
            item.watch.lap("llm")
            if reply is None:
                item.checked = Checked(None, "engine_failed", tuple(problems))
            else:
                item.checked = check(deps, item.event, item.facts, item.decision, reply, problems)
            item.watch.lap("checks")
        except Exception as exc:
            item.result = exc

    if concurrency <= 1 or len(items) <= 1 or isinstance(deps.engine, PolicyEngine):
        for item in items:  # the rules engine answers in microseconds: a thread would cost more
            one(item)
        return
    pool = _executor(concurrency)
    for future in [pool.submit(one, item) for item in items]:
        future.result()


def _decide(deps: Deps, item: Item, ctx: EventContext) -> None:
    """The stages before the engine: facts, gate, history, cap, the engine's request."""
    event = item.event
    facts = rules.facts_for(event, ctx, deps.clock())
    item.watch.lap("state")
    reason = gate(deps, facts)
    if reason is not None:
        item.facts, item.checked = facts, Checked(None, reason)
        return
    facts = history(deps, event, facts)
    item.watch.lap("history")
    decision = cap(deps, facts)
    item.facts, item.decision = facts, decision
    if not decision.allowed:
        item.checked = Checked(None, decision.reason)
    else:
        item.request = offer_request(event, facts, decision, deps.rules)


def _wave(deps: Deps, items: list[Item], job: JobInfo, concurrency: int) -> None:
    """One wave: one read, the stages, the engine asked concurrently, one write transaction."""
    try:
        contexts = deps.hot.event_contexts(
            [(i.event.event_id, i.event.session_id, i.event.user_id) for i in items]
        )
    except Exception as exc:
        for item in items:
            item.result = exc
        return
    for item, ctx in zip(items, contexts, strict=True):
        if ctx.outcome is not None:
            item.replay_of = ctx
            continue
        try:
            _decide(deps, item, ctx)
        except Exception as exc:
            item.result = exc
    for item in items:
        if item.result is None and item.checked is not None:
            item.watch.lap("checks")  # decided without the engine
    _ask_all(deps, [i for i in items if i.request is not None and i.result is None], concurrency)
    todo = [i for i in items if i.result is None and i.checked is not None]
    if not todo:
        return
    done: list[tuple[Item, bool, Checked]] = []
    try:
        with deps.hot.transaction():
            # Customers about to get an offer, asked in one order: a store that locks a customer
            # for the offer window (PostgreSQL) takes a batch's locks sorted, so two batches
            # sharing customers never wait on each other in a cycle.
            for user in sorted({i.event.user_id for i in todo if i.checked and i.checked.offer}):
                deps.hot.last_offer_at(user)
            for item in todo:
                assert item.facts is not None and item.checked is not None
                try:
                    with deps.hot.savepoint():
                        recorded, checked = commit_in_transaction(
                            deps, item.event, item.facts, item.checked, job, item.watch
                        )
                except Exception as exc:
                    item.result = exc
                    continue
                done.append((item, recorded, checked))
    except Exception as exc:  # the transaction itself failed: nothing of the wave is committed
        for item in todo:
            item.result = exc
        return
    for item, recorded, checked in done:
        if not recorded:  # another run of the event recorded its outcome first
            prior = deps.hot.get_outcome(item.event.event_id)
            assert prior is not None
            item.replay_of = EventContext(prior, None, None)
            continue
        item.checked, item.offer = checked, checked.offer
        item.result = _outcome(item, checked)


def _outcome(item: Item, checked: Checked) -> Outcome:
    return outcome_of(item.event, checked, item.watch)


def process_batch(
    events: Sequence[CartEvent],
    deps: Deps,
    job: JobInfo | None = None,
    concurrency: int = 8,
) -> list[Result]:
    """Turn validated events into their outcomes (each idempotent by ``event_id``), in the order
    given: per event its ``Outcome``, or the exception its processing raised (the others are done
    regardless). Raises only if the publication fails (Redis): every outcome is committed by then,
    and a re-run replays them and publishes what is still waiting."""
    job = job or JobInfo()
    started = time.perf_counter()
    items = [Item(i, e, Stopwatch()) for i, e in enumerate(events)]
    for item in items:
        item.watch.last = started
    for positions in waves(events):
        _wave(deps, [items[p] for p in positions], job, concurrency)
    # the publication: the new offers, and any offer of a replayed event still waiting
    offers = [i.offer for i in items if i.offer is not None]
    pending_ids = [
        i.replay_of.outcome.offer_id
        for i in items
        if i.replay_of is not None and i.replay_of.outcome and i.replay_of.outcome.offer_id
    ]
    if pending_ids:
        offers += [o for o in deps.hot.get_offers(pending_ids) if o.published_at is None]
    deps.outbox.publish_many(offers)
    for item in items:
        if item.offer is not None:
            item.watch.lap("publish")
    out: list[Result] = []
    for item in items:
        if item.replay_of is not None and item.replay_of.outcome is not None:
            prior = item.replay_of.outcome
            log.info(
                "event_replayed",
                event_id=item.event.event_id,
                outcome=prior.outcome,
                reason=prior.reason,
            )
            item.result = Outcome(
                item.event.event_id, prior.outcome, prior.reason, prior.offer_id, replayed=True
            )
        assert item.result is not None
        out.append(item.result)
    return out
