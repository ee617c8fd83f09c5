"""Offers handed off to the worker's job-finishing transaction (worker/handoff.py): held after the
commit, on the stream once that transaction runs, once even if it is staged again."""

from __future__ import annotations

from pathlib import Path

import fakeredis

from tests.conftest import event, make_deps
from worker.events import parse_event
from worker.pipeline import process


def test_offer_waits_for_the_workers_transaction(data_dir: Path) -> None:
    client = fakeredis.FakeRedis()
    deps = make_deps(data_dir, client)
    deps.handoff.enabled = True
    outcome = process(parse_event(event()), deps)
    assert outcome.outcome == "offer"
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer["published_at"] is None  # committed: the outbox has it
    assert client.xlen("sgr:offers") == 0 and len(deps.handoff) == 1

    with client.pipeline() as pipe:  # as RQ's handle_job_success: MULTI ... EXEC
        pipe.hincrby("rq:worker:w1", "successful_job_count", 1)
        assert deps.handoff.stage(pipe, deps.publisher) == 1
        pipe.execute()
    confirmed = deps.handoff.confirm()
    assert [o["offer_id"] for o in confirmed] == [outcome.offer_id]
    assert len(deps.handoff) == 0
    entries = client.xrange("sgr:offers")
    assert [e[1][b"offer_id"].decode() for e in entries] == [outcome.offer_id]
    assert entries[0][1][b"code"].decode() == offer["code"]


def test_staged_again_after_an_aborted_transaction_publishes_once(data_dir: Path) -> None:
    client = fakeredis.FakeRedis()
    deps = make_deps(data_dir, client)
    deps.handoff.enabled = True
    outcome = process(parse_event(event()), deps)
    with client.pipeline() as pipe:  # RQ retries on WatchError: the first attempt never runs
        deps.handoff.stage(pipe, deps.publisher)
        pipe.reset()
    assert client.xlen("sgr:offers") == 0
    for _ in range(2):  # staged by the retry, and once more as if the confirmation were lost
        with client.pipeline() as pipe:
            deps.handoff.stage(pipe, deps.publisher)
            pipe.execute()
    assert [e[1][b"offer_id"].decode() for e in client.xrange("sgr:offers")] == [outcome.offer_id]


def test_without_a_taker_the_offer_is_published_at_once(data_dir: Path) -> None:
    client = fakeredis.FakeRedis()
    deps = make_deps(data_dir, client)
    outcome = process(parse_event(event()), deps)
    assert len(deps.handoff) == 0
    assert client.xlen("sgr:offers") == 1
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer["published_at"] is not None
