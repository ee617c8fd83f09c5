"""The pipeline on real SQLite files (the hot store, and the history snapshot of a real DuckDB
cold store): one outcome per event, offers within the cap,
published once; the LLM path against an OpenAI-compatible STAND-IN at the edge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import fakeredis
import pytest

from testbench.standin_llm import StandInLLM
from tests.conftest import NOW, Clock, event, make_deps
from worker.domain.codes import normalize
from worker.domain.events import parse_event
from worker.engines.base import CircuitBreaker
from worker.engines.vllm import VllmEngine
from worker.runner import process


def run(deps, payload):  # type: ignore[no-untyped-def]
    return process(parse_event(payload), deps)


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_abandoned_cart_gets_one_published_offer(
    data_dir: Path, client: fakeredis.FakeRedis
) -> None:
    deps = make_deps(data_dir, client)
    outcome = run(deps, event())
    assert outcome.outcome == "offer"
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None
    assert 0 < offer.discount_pct <= offer.cap_pct
    assert offer.published_at is not None
    assert normalize(offer.code) == offer.code
    assert deps.hot.code_state(offer.code).offer_id == offer.offer_id  # type: ignore[union-attr]
    assert f"{offer.discount_pct:g}%" in offer.message
    entries = client.xrange("sgr:offers")
    assert len(entries) == 1
    assert entries[0][1][b"offer_id"].decode() == offer.offer_id
    reasoning = offer.reasoning
    assert list(reasoning["pricing"])[:4] == [
        "churn_analysis",
        "financial_analysis",
        "margin_math",
        "max_allowed_discount",
    ]


def test_replayed_event_does_nothing_twice(data_dir: Path, client: fakeredis.FakeRedis) -> None:
    deps = make_deps(data_dir, client)
    first = run(deps, event())
    second = run(deps, event())
    assert second.replayed and second.offer_id == first.offer_id
    assert client.xlen("sgr:offers") == 1
    assert deps.hot.summary()["offers"] == 1


def test_one_offer_per_customer_within_window(data_dir: Path, client: fakeredis.FakeRedis) -> None:
    clock = Clock()
    deps = make_deps(data_dir, client, clock=clock)
    assert run(deps, event(event_id="a", session="s1")).outcome == "offer"
    clock.advance(hours=1)
    second = run(deps, event(event_id="b", session="s2", at=clock.now))
    assert (second.outcome, second.reason) == ("no_offer", "offer_window")
    clock.advance(hours=30)  # past the 24 h window, but the first code (48 h) is still live
    third = run(deps, event(event_id="c", session="s3", at=clock.now))
    assert (third.outcome, third.reason) == ("no_offer", "offer_live")
    clock.advance(hours=20)  # the first code has expired: a new one may be made
    assert run(deps, event(event_id="d", session="s4", at=clock.now)).outcome == "offer"


def test_out_of_order_events(data_dir: Path, client: fakeredis.FakeRedis) -> None:
    deps = make_deps(data_dir, client)
    later = NOW + timedelta(hours=1)
    assert run(deps, event("order_completed", event_id="o", at=later)).reason == "not_a_trigger"
    stale = run(deps, event(event_id="a", at=NOW))
    assert (stale.outcome, stale.reason) == ("no_offer", "stale_event")
    state = deps.hot.get_session("s1")
    assert state is not None and state.status == "ordered"


def test_new_customer_rule(data_dir: Path, client: fakeredis.FakeRedis) -> None:
    deps = make_deps(data_dir, client)
    outcome = run(deps, event(user="brand-new"))
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None
    assert offer.segment == "new_customer"
    assert offer.cap_pct == deps.rules.new_customer_cap_pct


def test_outbox_publishes_committed_offers_once(
    data_dir: Path, client: fakeredis.FakeRedis
) -> None:
    deps = make_deps(data_dir, client)
    outcome = run(deps, event())
    deps.hot.conn.execute("UPDATE offers SET published_at = NULL")  # as if we crashed before
    assert deps.outbox.flush() == 1
    assert deps.outbox.flush() == 0
    assert client.xlen("sgr:offers") == 1  # the marker kept the stream free of a double
    assert deps.hot.get_offer(outcome.offer_id or "").published_at is not None  # type: ignore[union-attr]


def vllm_edge(url: str) -> VllmEngine:
    return VllmEngine(
        base_url=url, timeout_s=2, retries=1, backoff_s=0.01, breaker=CircuitBreaker(2, 60)
    )


def test_llm_path_sends_strict_json_schema_with_the_cap(
    data_dir: Path, client: fakeredis.FakeRedis
) -> None:
    with StandInLLM() as llm:
        deps = make_deps(data_dir, client, engine=vllm_edge(llm.url))
        outcome = run(deps, event())
        assert outcome.engine == "vllm" and outcome.guardrail == ()
        body = llm.requests[-1]
        assert body["model"] == "stand-in"  # discovered from /v1/models
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        offer = deps.hot.get_offer(outcome.offer_id or "")
        assert offer is not None
        bound = fmt["json_schema"]["schema"]["properties"]["pricing"]["properties"][
            "discount_percent"
        ]
        assert bound["maximum"] == offer.cap_pct
        assert "guided_json" not in body and "extra_body" not in body
        assert offer.engine == "vllm" and offer.model == "stand-in"


@pytest.mark.parametrize(
    "fault", ["over_cap", "percent_mismatch", "invalid_json", "truncated", "error500"]
)
def test_bad_llm_answers_fall_back_to_rules(
    data_dir: Path, client: fakeredis.FakeRedis, fault: str
) -> None:
    with StandInLLM(fault=fault) as llm:
        deps = make_deps(data_dir, client, engine=vllm_edge(llm.url))
        outcome = run(deps, event())
    assert outcome.outcome == "offer"
    assert outcome.engine == "policy"
    assert outcome.guardrail  # the reason is recorded
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer.discount_pct <= offer.cap_pct
    assert offer.guardrail


def test_bad_llm_answer_can_mean_no_offer(data_dir: Path, client: fakeredis.FakeRedis) -> None:
    with StandInLLM(fault="over_cap") as llm:
        deps = make_deps(data_dir, client, engine=vllm_edge(llm.url), on_invalid_answer="no_offer")
        outcome = run(deps, event())
    assert (outcome.outcome, outcome.reason) == ("no_offer", "engine_failed")
    recorded = deps.hot.get_outcome("e1")
    assert recorded is not None and "[maximum]" in (recorded.error or "")
    assert deps.hot.summary()["bound_interventions"] == 1
    assert client.xlen("sgr:offers") == 0


def test_offers_lost_by_redis_are_published_again_once(
    data_dir: Path, client: fakeredis.FakeRedis
) -> None:
    from datetime import timedelta

    deps = make_deps(data_dir, client)
    run(deps, event(event_id="a", session="s1", user="u000001"))
    kept = run(deps, event(event_id="b", session="s2", user="u000002"))
    since = NOW - timedelta(minutes=15)
    assert deps.outbox.republish_lost(since) == 0
    client.flushall()  # Redis crashed and came back without its last writes
    assert deps.outbox.republish_lost(since) == 2
    assert deps.outbox.republish_lost(since) == 0
    ids = [fields[b"offer_id"].decode() for _id, fields in client.xrange("sgr:offers")]
    assert sorted(ids) == sorted(set(ids)) and kept.offer_id in ids


def test_outcomes_lost_by_redis_are_published_again_once_and_alike(
    data_dir: Path, client: fakeredis.FakeRedis, hot_store_url: str
) -> None:
    from datetime import timedelta

    deps = make_deps(data_dir, client, hot_store_url=hot_store_url)
    run(deps, event(event_id="a", session="s1", user="u000001"))
    run(deps, event("item_added", event_id="b", session="s2", user="u000002"))
    since = NOW - timedelta(minutes=15)
    first = [fields for _id, fields in client.xrange("sgr:outcomes")]
    assert [f[b"outcome"] for f in first] == [b"offer", b"no_offer"]
    assert deps.outbox.republish_lost_outcomes(since) == 0
    client.flushall()  # Redis crashed and came back without its last writes
    assert deps.outbox.republish_lost_outcomes(since) == 2
    assert deps.outbox.republish_lost_outcomes(since) == 0
    # read back from the hot store, each entry is the one first published from memory
    assert [fields for _id, fields in client.xrange("sgr:outcomes")] == first


def test_republished_entry_is_identical_to_the_first(
    data_dir: Path, client: fakeredis.FakeRedis
) -> None:
    """The first publication goes from memory, a re-publication from the hot store's row: the
    shop must see the same fields either way (times in the same format, numbers alike)."""
    from datetime import timedelta

    deps = make_deps(data_dir, client)
    run(deps, event())
    [(_id, first)] = client.xrange("sgr:offers")
    client.flushall()
    assert deps.outbox.republish_lost(NOW - timedelta(minutes=15)) == 1
    [(_id, again)] = client.xrange("sgr:offers")
    assert again == first
    assert first[b"expires_at"].decode().endswith("+00:00") and "T" in first[b"expires_at"].decode()


class StandInEngineWhileAnotherWorkerRuns:
    """A STAND-IN for the LLM that, while "thinking", lets another worker process other events
    (the way a slow LLM call would): they go through the real pipeline on their own connection."""

    name = "stand-in"

    def __init__(self, inner, other_deps, other_events) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.other_deps, self.other_events = inner, other_deps, other_events

    def propose(self, request):  # type: ignore[no-untyped-def]
        for payload in self.other_events:
            run(self.other_deps, payload)
        return self.inner.propose(request)


@pytest.mark.parametrize(
    ("meanwhile", "reason"),
    [
        ({"kind": "order_completed", "event_id": "o1", "seconds": 5}, "stale_event"),
        # an order recorded with an earlier time still ends the session: ordered is final
        ({"kind": "order_completed", "event_id": "o2", "seconds": -5}, "order_completed"),
        ({"kind": "cart_updated", "event_id": "u1", "seconds": 5}, "stale_event"),
        ({"kind": "cart_abandoned", "event_id": "a2", "seconds": 5}, "stale_event"),
    ],
)
def test_offer_is_dropped_when_the_session_moved_on_meanwhile(
    data_dir: Path, client: fakeredis.FakeRedis, meanwhile: dict[str, object], reason: str
) -> None:
    """The decision is made on the state read before the engine is asked; the commit applies the
    event and asks the rules again on what is committed by then."""
    from datetime import timedelta

    from worker.engines.policy import PolicyEngine

    other = make_deps(data_dir, client)
    later = NOW + timedelta(seconds=int(meanwhile["seconds"]))  # type: ignore[call-overload]
    newer = event(str(meanwhile["kind"]), event_id=str(meanwhile["event_id"]), at=later)
    deps = make_deps(data_dir, client)
    deps = replace(
        deps, engine=StandInEngineWhileAnotherWorkerRuns(PolicyEngine(deps.rules), other, [newer])
    )
    outcome = run(deps, event())
    assert (outcome.outcome, outcome.reason) == ("no_offer", reason)
    offers = [f[b"event_id"].decode() for _id, f in client.xrange("sgr:offers")]
    assert "e1" not in offers  # nothing published for the dropped offer
    session = deps.hot.get_session("s1")
    newest = meanwhile["event_id"] if int(meanwhile["seconds"]) > 0 else "e1"  # type: ignore[call-overload]
    assert session is not None and session.last_event_id == newest
    assert deps.hot.get_outcome("e1") is not None  # still exactly one recorded outcome
