"""Batch jobs (worker/runner.py) on real SQLite files and a real redis-server: each event its own
outcome, as the one-event path gives it; one read, one write transaction and one publication per
batch; a failing event fails alone; a re-run is a no-op; a session's events keep their order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import NOW, Clock, event, make_deps
from worker.deps import Deps
from worker.domain.events import CartEvent, parse_event
from worker.domain.model import Outcome
from worker.engines.base import EngineReply, OfferRequest
from worker.engines.policy import PolicyEngine
from worker.keys import Keys
from worker.outbox import Outbox
from worker.publish import PUBLISH_ONCE, Publisher
from worker.runner import process, waves
from worker.runner import run as process_batch
from worker.settings import Settings


def parsed(*payloads: dict[str, Any]) -> list[CartEvent]:
    return [parse_event(p, NOW) for p in payloads]


def abandoned(n: int, **extra: Any) -> dict[str, Any]:
    return event(event_id=f"e{n}", session=f"s{n}", user=f"u{n:06d}", **extra)


def outcomes(results: list[Outcome | Exception]) -> list[Outcome]:
    assert all(isinstance(r, Outcome) for r in results), results
    return [r for r in results if isinstance(r, Outcome)]


class StatementLog:
    """The statements the real SQLite connection runs (its own trace hook)."""

    def __init__(self, deps: Deps) -> None:
        self.lines: list[str] = []
        deps.hot.conn.set_trace_callback(self.lines.append)  # type: ignore[attr-defined]

    def count(self, text: str) -> int:
        return sum(1 for line in self.lines if text in line)


class FlakyEngine:
    """A TEST DOUBLE at the edge: the rules engine, except that it raises a plain error (not an
    EngineError: a bug) for the event ids given."""

    name = "flaky"

    def __init__(self, inner: PolicyEngine, fail_for: set[str]) -> None:
        self.inner, self.fail_for = inner, fail_for

    def propose(self, request: OfferRequest) -> EngineReply:
        if request.event_id in self.fail_for:
            raise RuntimeError(f"flaky engine fails {request.event_id}")
        return self.inner.propose(request)


@pytest.fixture
def client(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    yield redis_client


def test_each_event_gets_its_outcome_with_one_read_one_transaction_one_publication(
    data_dir: Path, client: redis.Redis, hot_store_url: str
) -> None:
    deps = make_deps(data_dir, client, hot_store_url=hot_store_url)
    log = StatementLog(deps) if not hot_store_url else None
    client.script_load(PUBLISH_ONCE)  # as in a worker after its first job
    before = client.info("commandstats")
    events = parsed(
        abandoned(1),
        abandoned(2),
        abandoned(3, value=5.0),  # below the minimum cart value
        event("item_added", event_id="e4", session="s4", user="u000004"),
        abandoned(5),
    )
    results = outcomes(process_batch(events, deps, concurrency=4))
    assert [(r.event_id, r.outcome, r.reason) for r in results] == [
        ("e1", "offer", None),
        ("e2", "offer", None),
        ("e3", "no_offer", "below_min_cart_value"),
        ("e4", "no_offer", "not_a_trigger"),
        ("e5", "offer", None),
    ]
    for r in results:
        recorded = deps.hot.get_outcome(r.event_id)
        assert recorded is not None and recorded.outcome == r.outcome
        if r.offer_id:
            offer = deps.hot.get_offer(r.offer_id)
            assert offer is not None and offer.published_at is not None
            assert 0 < offer.discount_pct <= offer.cap_pct
    assert [e[1][b"event_id"] for e in client.xrange("sgr:offers")] == [b"e1", b"e2", b"e5"]
    if log is not None:  # the SQLite connection's own trace
        assert log.count("BEGIN") == 1  # one write transaction for the five events
        assert log.count("LEFT JOIN processed_events") == 1  # one read of their contexts
    after = client.info("commandstats")
    calls = {k: after[k]["calls"] - before.get(k, {}).get("calls", 0) for k in after}
    assert calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_eval", 0) == 1
    # 3 offers and the 5 events' outcomes, in that one script call; only offers are announced
    assert calls["cmdstat_xadd"] == 3 + 5 and calls["cmdstat_publish"] == 3
    outcomes_stream = [e[1] for e in client.xrange("sgr:outcomes")]
    assert [(e[b"event_id"], e[b"outcome"]) for e in outcomes_stream] == [
        (r.event_id.encode(), r.outcome.encode()) for r in results
    ]


def test_a_failing_event_fails_alone(
    data_dir: Path, client: redis.Redis, hot_store_url: str
) -> None:
    rules = Settings().rule_config()
    engine = FlakyEngine(PolicyEngine(rules), {"e2"})
    deps = make_deps(data_dir, client, engine=engine, hot_store_url=hot_store_url)
    results = process_batch(parsed(abandoned(1), abandoned(2), abandoned(3)), deps, concurrency=3)
    assert isinstance(results[1], RuntimeError) and "e2" in str(results[1])
    assert [r.outcome for r in outcomes([results[0], results[2]])] == ["offer", "offer"]
    assert deps.hot.get_outcome("e2") is None  # left for the job's retry
    assert deps.hot.get_session("s2") is None
    assert client.xlen("sgr:offers") == 2


def test_an_event_failing_in_the_commit_undoes_only_its_own_writes(
    data_dir: Path, client: redis.Redis, hot_store_url: str
) -> None:
    codes = iter(["SGR-AAAA-BBBB-CCCC", "SGR-AAAA-BBBB-CCCC", "SGR-DDDD-EEEE-FFFF"])
    deps = make_deps(data_dir, client, hot_store_url=hot_store_url)
    deps = replace(deps, new_code=lambda: next(codes))
    results = process_batch(parsed(abandoned(1), abandoned(2), abandoned(3)), deps)
    # the second offer drew the same code: it cannot commit
    assert "unique" in str(results[1]).lower()
    assert [r.outcome for r in outcomes([results[0], results[2]])] == ["offer", "offer"]
    assert deps.hot.get_outcome("e2") is None and deps.hot.get_session("s2") is None
    assert deps.hot.get_session("s1") is not None and deps.hot.get_session("s3") is not None


def test_a_rerun_is_a_no_op_and_publishes_what_was_left(
    data_dir: Path, client: redis.Redis, hot_store_url: str
) -> None:
    deps = make_deps(data_dir, client, hot_store_url=hot_store_url)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    keys = Keys.from_settings(Settings())
    cut_off = replace(deps, outbox=Outbox(deps.hot, Publisher(dead, keys), deps.clock))
    events = parsed(abandoned(1), abandoned(2), event("item_added", event_id="e3", session="s3"))
    with pytest.raises(redis.ConnectionError):  # committed, then Redis was gone
        process_batch(events, cut_off)
    assert client.xlen("sgr:offers") == 0
    first = [deps.hot.get_outcome(f"e{n}") for n in (1, 2, 3)]
    again = outcomes(process_batch(events, deps))
    assert all(r.replayed for r in again)
    assert [(r.outcome, r.offer_id) for r in again] == [(o.outcome, o.offer_id) for o in first if o]
    assert client.xlen("sgr:offers") == 2  # the waiting offers, published by the re-run
    third = outcomes(process_batch(events, deps))
    assert [r.offer_id for r in third] == [r.offer_id for r in again]
    assert client.xlen("sgr:offers") == 2 and deps.hot.summary()["offers"] == 2


def test_waves_keep_a_sessions_customers_and_events_order() -> None:
    events = parsed(
        event(event_id="a", session="s1", user="u1"),
        event(event_id="b", session="s2", user="u2"),
        event(event_id="c", session="s1", user="u1"),
        event(event_id="d", session="s3", user="u2"),  # another session of customer u2
        event(event_id="b", session="s4", user="u4"),  # the same event id again
        event(event_id="e", session="s5", user="u5"),
    )
    assert waves(events) == [[0, 1, 5], [2, 3, 4]]


def test_a_session_inside_a_batch_sees_its_earlier_events(
    data_dir: Path, client: redis.Redis, hot_store_url: str
) -> None:
    later = NOW + timedelta(minutes=5)
    events = parsed(
        event("order_completed", event_id="o", session="s1", at=later),
        event(event_id="a", session="s1", at=NOW),  # older than the order: stale
        event(event_id="b", session="s2", user="u000002", at=NOW),
        event("order_completed", event_id="p", session="s2", user="u000002", at=later),
    )
    deps = make_deps(data_dir, client, hot_store_url=hot_store_url)
    results = outcomes(process_batch(events, deps))
    assert [(r.event_id, r.outcome, r.reason) for r in results] == [
        ("o", "no_offer", "not_a_trigger"),
        ("a", "no_offer", "stale_event"),
        ("b", "offer", None),
        ("p", "no_offer", "not_a_trigger"),
    ]


def mixed_events(seed: int, count: int) -> list[dict[str, Any]]:
    """Events of a few sessions and customers in shuffled time order: out-of-order, duplicate,
    foreign-session and repeat-customer cases all arise."""
    rng = random.Random(seed)
    kinds = ["cart_abandoned"] * 4 + ["item_added", "order_completed", "checkout_started"]
    out = []
    for i in range(count):
        session = rng.randrange(6)
        user = session % 4 if rng.random() > 0.1 else rng.randrange(4)
        out.append(
            event(
                rng.choice(kinds),
                event_id=f"m{rng.randrange(count) if rng.random() < 0.1 else i}",
                session=f"s{session}",
                user=f"u{user:06d}",
                at=NOW - timedelta(minutes=rng.randrange(60)),
                value=rng.choice([20.0, 120.0, 300.0]),
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_decides_as_the_same_events_one_by_one(
    tmp_path: Path, data_dir: Path, client: redis.Redis, seed: int
) -> None:
    payloads = mixed_events(seed, 40)
    one_by_one = make_deps(data_dir, client, clock=Clock())
    single = [process(e, one_by_one) for e in parsed(*payloads)]
    other = tmp_path / "other"
    other.mkdir()
    for name in ("cold.duckdb", "history.sqlite"):
        (other / name).symlink_to((data_dir / name).resolve())
    client.flushdb()
    batched = outcomes(process_batch(parsed(*payloads), make_deps(other, client, clock=Clock())))
    assert [(r.outcome, r.reason, r.replayed) for r in batched] == [
        (r.outcome, r.reason, r.replayed) for r in single
    ]
    assert len({r.outcome for r in single}) >= 2
