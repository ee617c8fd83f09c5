"""The runner's own guarantees, on real SQLite files: two copies of one event id decided side by
side (two workers) write one outcome and one session state, on both hot-store backends; an exception in one event's write
undoes that event's writes only."""

from __future__ import annotations

import threading
from pathlib import Path

import fakeredis

from tests.conftest import event, make_deps
from worker import runner
from worker.deps import JobInfo
from worker.domain.events import parse_event
from worker.handlers import handler_for
from worker.stopwatch import Stopwatch


def decided(deps: runner.Deps, payload: dict[str, object]) -> runner.Item:
    """An event decided up to its write, as a worker decides it before it commits."""
    ev = parse_event(payload)
    item = runner.Item(ev, Stopwatch())
    ctx = deps.hot.event_context(ev.event_id, ev.session_id, ev.user_id)
    item.plan = handler_for(ev)(deps, ev, ctx, item.watch)
    if item.plan.needs_engine:
        item.plan.ask(deps)
    return item


def test_two_copies_of_one_event_id_write_one_outcome_and_one_session(data_dir: Path, hot_store_url: str) -> None:  # fmt: skip
    deps = make_deps(data_dir, fakeredis.FakeRedis(), hot_store_url=hot_store_url)
    first = decided(deps, event(event_id="dup", session="s-a", user="u000001"))
    second = decided(deps, event(event_id="dup", session="s-b", user="u000002"))
    runner._write_all(deps, [first], JobInfo())
    runner._write_all(deps, [second], JobInfo())
    assert first.written is not None and first.written.offer is not None
    assert second.written is None and second.replay_of is not None  # the first copy's outcome
    assert second.replay_of.offer_id == first.written.offer.offer_id
    assert deps.hot.get_session("s-a") is not None
    assert deps.hot.get_session("s-b") is None  # the second copy's writes were undone
    assert deps.hot.summary()["offers"] == 1


def test_two_decisions_for_one_customer_commit_one_code(data_dir: Path, hot_store_url: str) -> None:
    """Two abandonments of one customer (two sessions) decided side by side: the second write,
    with the customer locked, finds the first's offer and makes none."""
    deps = make_deps(data_dir, fakeredis.FakeRedis(), hot_store_url=hot_store_url)
    a = decided(deps, event(event_id="a", session="s1", user="u000003"))
    b = decided(deps, event(event_id="b", session="s2", user="u000003"))
    runner._write_all(deps, [a], JobInfo())
    runner._write_all(deps, [b], JobInfo())
    assert a.written is not None and a.written.offer is not None
    assert b.written is not None and b.written.offer is None
    assert b.written.outcome.reason == "offer_window"
    assert deps.hot.summary()["offers"] == 1


def test_a_code_redeemed_during_a_turn_stays_the_only_redemption(
    data_dir: Path, hot_store_url: str
) -> None:
    """A counter-offer is priced against the customer's live code; the customer redeems that
    code while the turn waits for its answer; the turn's write finds it redeemed: no new code,
    the redeemed offer is not voided, the customer keeps exactly the one discount they used."""
    deps = make_deps(data_dir, fakeredis.FakeRedis(), hot_store_url=hot_store_url)
    user, price = "user_5", "Too expensive, can you give me a better price?"
    cart = {"currency": "EUR", "value": 120.0, "margin": 0.4}
    first = decided(deps, event("customer_message", event_id="m1", user=user, session="c1", message=price, cart=cart))  # fmt: skip
    runner._write_all(deps, [first], JobInfo())
    assert first.written is not None and first.written.offer is not None  # the opening offer
    live = first.written.offer
    turn = decided(deps, event("customer_message", event_id="m2", user=user, session="c1", message="Still too much, go lower please.", cart=cart))  # fmt: skip
    plan = turn.plan
    assert plan is not None and plan.priced is not None and plan.priced.offer is not None  # type: ignore[attr-defined]
    assert deps.hot.redeem(live.code, deps.clock())  # meanwhile, at the checkout
    runner._write_all(deps, [turn], JobInfo())
    assert turn.written is not None and turn.written.offer is None
    assert turn.written.outcome.reason == "offer_changed_meanwhile"
    assert deps.hot.summary()["offers"] == 1
    voids = deps.hot.query("SELECT offer_id FROM offer_voids")  # type: ignore[attr-defined]
    assert list(voids) == []  # the redeemed code was not voided
    state = deps.hot.code_state(live.code)
    assert state is not None and state.redeemed_at is not None


def test_two_workers_committing_at_once_leave_one_live_code(data_dir: Path, hot_store_url: str) -> None:  # fmt: skip
    """Two workers (two connections) decided two turns of one customer in two sessions, both
    against no live offer, and commit at the same moment: the per-customer lock makes the second
    see the first's code; one live code."""
    one = make_deps(data_dir, fakeredis.FakeRedis(), hot_store_url=hot_store_url)
    two = make_deps(data_dir, fakeredis.FakeRedis(), hot_store_url=hot_store_url)
    price = "Too expensive, can you give me a better price?"
    cart = {"currency": "EUR", "value": 120.0, "margin": 0.4}
    a = decided(one, event("customer_message", event_id="p1", user="user_7", session="c1", message=price, cart=cart))  # fmt: skip
    b = decided(two, event("customer_message", event_id="p2", user="user_7", session="c2", message=price, cart=cart))  # fmt: skip
    start = threading.Barrier(2)

    def commit(deps: runner.Deps, item: runner.Item) -> None:
        start.wait()
        runner._write_all(deps, [item], JobInfo())

    threads = [threading.Thread(target=commit, args=pair) for pair in ((one, a), (two, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    offers = [i.written.offer for i in (a, b) if i.written is not None and i.written.offer]
    assert len(offers) == 1, [i.result or i.written for i in (a, b)]
    loser = b if offers[0] is a.written.offer else a  # type: ignore[union-attr]
    assert loser.written is not None and loser.written.outcome.reason == "offer_changed_meanwhile"
    assert one.hot.summary()["offers"] == 1
