"""LLM faults against the StandInLLM (a test double at the edge, not vLLM): bounded retries, the
configured fallback, and a circuit breaker that stops a dead LLM from costing every job its
timeout. The pipeline, stores and engines are the project's own, on temporary files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testbench.redisproc import free_port
from testbench.standin_llm import StandInLLM
from tests.conftest import Clock, event, make_deps
from worker.domain.events import parse_event
from worker.domain.rules import share_of_cap
from worker.engines.base import CircuitBreaker
from worker.engines.vllm import VllmEngine
from worker.runner import process

TIMEOUT_S = 0.4


class Ticks:
    """A monotonic clock for the breaker that a test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def engine(url: str, retries: int = 1, breaker: CircuitBreaker | None = None) -> VllmEngine:
    return VllmEngine(
        base_url=url,
        model="stand-in",
        timeout_s=TIMEOUT_S,
        retries=retries,
        backoff_s=0.01,
        breaker=breaker or CircuitBreaker(100, 60.0),
    )


def abandoned(n: int = 1) -> object:
    # u000001 has history in the test cold store; a fresh session per event.
    return parse_event(event(event_id=f"e{n}", session=f"s{n}", user=f"u{n:06d}", value=150.0))


FAULT_KINDS = {
    "timeout": "engine_timeout",
    "error500": "engine_server_error",
    "refuse_conn": "engine_connection",
    "invalid_json": "engine_invalid_output",
    "truncated": "engine_length",
}


@pytest.mark.parametrize("fault", sorted(FAULT_KINDS))
def test_fault_falls_back_to_policy_after_bounded_retries(data_dir: Path, fault: str) -> None:
    with StandInLLM(fault=fault) as llm:
        deps = make_deps(data_dir, engine=engine(llm.url, retries=1))
        started = time.perf_counter()
        outcome = process(abandoned(), deps)
        took = time.perf_counter() - started
        # one try + one retry, no more; a timeout spent the answer's whole deadline: no retry
        assert len(llm.requests) == (1 if fault == "timeout" else 2)
        assert took < TIMEOUT_S + 1.0  # never past the one deadline (plus the rules engine)
    assert outcome.outcome == "offer"
    assert outcome.engine == "policy"
    assert any(p.startswith(FAULT_KINDS[fault]) for p in outcome.guardrail)
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None and offer.discount_pct <= offer.cap_pct
    # the fallback is the rules' own choice (half the cap by default), never the cap
    assert offer.discount_pct < offer.cap_pct
    assert offer.discount_pct == share_of_cap(offer.cap_pct, deps.rules)
    assert offer.published_at is not None


@pytest.mark.parametrize("fault", ["over_cap", "percent_mismatch", "error500"])
def test_a_refused_or_failed_answer_never_yields_the_cap(data_dir: Path, fault: str) -> None:
    with StandInLLM(fault=fault) as llm:
        deps = make_deps(data_dir, engine=engine(llm.url, retries=0))
        outcomes = [process(abandoned(n), deps) for n in range(1, 4)]
    for outcome in outcomes:
        assert (outcome.outcome, outcome.engine) == ("offer", "policy"), outcome
        offer = deps.hot.get_offer(outcome.offer_id or "")
        assert offer is not None and offer.discount_pct < offer.cap_pct, offer


@pytest.mark.parametrize("fault", ["error500", "invalid_json"])
def test_fault_with_no_offer_fallback_records_no_offer(data_dir: Path, fault: str) -> None:
    with StandInLLM(fault=fault) as llm:
        deps = make_deps(data_dir, engine=engine(llm.url, retries=0), on_invalid_answer="no_offer")
        outcome = process(abandoned(), deps)
    assert (outcome.outcome, outcome.reason) == ("no_offer", "engine_failed")
    assert deps.hot.get_outcome("e1") is not None
    assert deps.hot.unpublished_offers() == []


def test_nothing_listening_is_a_connection_fault(data_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    deps = make_deps(data_dir, engine=engine(url, retries=1))
    outcome = process(abandoned(), deps)
    assert outcome.engine == "policy"
    assert any(p.startswith("engine_connection") for p in outcome.guardrail)


def test_breaker_stops_a_dead_llm_from_costing_each_job_its_timeout(data_dir: Path) -> None:
    ticks = Ticks()
    breaker = CircuitBreaker(failures=2, cooldown_s=30.0, clock=ticks)
    with StandInLLM(fault="timeout") as llm:
        deps = make_deps(data_dir, engine=engine(llm.url, retries=0, breaker=breaker))
        took = []
        for n in range(1, 6):
            start = time.perf_counter()
            outcome = process(abandoned(n), deps)
            took.append(time.perf_counter() - start)
            assert outcome.engine == "policy"  # every job still gets its fallback offer
        assert len(llm.requests) == 2  # the breaker opened after two failures
        assert min(took[:2]) >= TIMEOUT_S
        assert max(took[2:]) < TIMEOUT_S / 2  # open breaker: no waiting on the dead LLM
        assert breaker.is_open

        # After the cool-down one trial goes through; the LLM is healthy again, so it closes.
        ticks.t += 31
        with llm.lock:
            llm.fault = "none"
        outcome = process(abandoned(6), deps)
        assert outcome.engine == "vllm"
        assert not breaker.is_open and breaker.allow()


def test_breaker_reopens_when_the_trial_fails(data_dir: Path) -> None:
    ticks = Ticks()
    breaker = CircuitBreaker(failures=1, cooldown_s=10.0, clock=ticks)
    with StandInLLM(fault="error500") as llm:
        deps = make_deps(data_dir, engine=engine(llm.url, retries=0, breaker=breaker))
        process(abandoned(1), deps)
        assert breaker.is_open
        ticks.t += 11
        process(abandoned(2), deps)  # the one trial fails
        assert breaker.is_open
        assert len(llm.requests) == 2


def test_recovered_llm_answers_again_without_restart(data_dir: Path) -> None:
    with StandInLLM(fault="error500") as llm:
        deps = make_deps(data_dir, engine=engine(llm.url, retries=0), clock=Clock())
        assert process(abandoned(1), deps).engine == "policy"
        with llm.lock:
            llm.fault = "none"
        assert process(abandoned(2), deps).engine == "vllm"
