"""The circuit breaker shared by concurrent callers (a batch job's LLM threads): failures counted
once each, and after the cool-down exactly one trial goes through while the others are refused;
against the LLM STAND-IN at the edge, the same seen from the server's side."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from testbench.standin_llm import StandInLLM
from tests.conftest import event
from worker.domain import rules
from worker.domain.events import parse_event
from worker.domain.model import EventContext
from worker.engines.base import CircuitBreaker, EngineError
from worker.engines.vllm import VllmEngine
from worker.handlers.cart import offer_request
from worker.settings import Settings


class Ticks:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def at_once(n: int, call: object) -> list[object]:
    """``call()`` from ``n`` threads released together."""
    barrier = threading.Barrier(n)

    def go() -> object:
        barrier.wait()
        return call()  # type: ignore[operator]

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: go(), range(n)))


def test_failures_from_many_threads_are_each_counted_once() -> None:
    breaker = CircuitBreaker(failures=64, cooldown_s=30.0, clock=Ticks())
    at_once(63, breaker.failure)
    assert not breaker.is_open and breaker.allow()
    breaker.failure()
    assert breaker.is_open and not breaker.allow()


def test_after_the_cool_down_one_trial_and_only_one() -> None:
    ticks = Ticks()
    breaker = CircuitBreaker(failures=2, cooldown_s=10.0, clock=ticks)
    breaker.failure()
    breaker.failure()
    assert at_once(16, breaker.allow).count(True) == 0  # cooling down
    ticks.t += 10
    assert at_once(32, breaker.allow).count(True) == 1  # the trial; the others refused
    assert breaker.is_open and not breaker.allow()  # still refused while it is under way
    breaker.success()
    assert at_once(16, breaker.allow).count(True) == 16  # closed again


def test_a_failed_trial_opens_for_another_cool_down() -> None:
    ticks = Ticks()
    breaker = CircuitBreaker(failures=3, cooldown_s=10.0, clock=ticks)
    for _ in range(3):
        breaker.failure()
    ticks.t += 11
    assert breaker.allow()
    breaker.failure()  # one failed trial re-opens it (not three more)
    ticks.t += 9
    assert not breaker.allow()
    ticks.t += 1
    assert at_once(8, breaker.allow).count(True) == 1


def test_a_trial_that_never_reports_back_stops_blocking_after_a_cool_down() -> None:
    ticks = Ticks()
    breaker = CircuitBreaker(failures=1, cooldown_s=10.0, clock=ticks)
    breaker.failure()
    ticks.t += 10
    assert breaker.allow()  # its caller then dies without success() or failure()
    ticks.t += 5
    assert not breaker.allow()
    ticks.t += 5
    assert breaker.allow()


def test_concurrent_callers_of_one_engine_send_one_trial_to_the_server() -> None:
    settings = Settings()
    cfg = settings.rule_config()
    ev = parse_event(event())
    fresh = EventContext(None, None, None)
    facts = rules.facts_for(ev, fresh, ev.occurred_at)
    request = offer_request(ev, facts, rules.cap_for(facts, cfg), cfg)
    ticks = Ticks()
    breaker = CircuitBreaker(failures=2, cooldown_s=30.0, clock=ticks)
    with StandInLLM(fault="error500", latency_s=0.5) as llm:
        engine = VllmEngine(llm.url, model=llm.model, timeout_s=5, retries=0, breaker=breaker)

        def propose() -> str:
            try:
                return engine.propose(request).engine
            except EngineError as exc:
                return exc.kind

        kinds = at_once(16, propose)
        # every thread passed the closed breaker before any failure came back: 16 requests
        assert kinds.count("server_error") == 16 and breaker.is_open
        assert at_once(16, propose).count("circuit_open") == 16
        sent = len(llm.requests)
        ticks.t += 30
        with llm.lock:
            llm.fault = "none"
            llm.latency_s = 0.3
        kinds = at_once(16, propose)
        assert kinds.count("vllm") == 1 and kinds.count("circuit_open") == 15
        assert len(llm.requests) == sent + 1  # one trial reached the server
        assert at_once(8, propose).count("vllm") == 8  # closed again
