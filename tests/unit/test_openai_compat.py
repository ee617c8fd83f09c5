"""The shared OpenAI-compatible transport (worker/engines/openai_compat.py) against test doubles
at the edge only: the STAND-IN LLM server (testbench/standin_llm.py, a real HTTP server on a
socket, so the deadline is tested on real reads) and, for answers a server might send, an
httpx.MockTransport named ``edge_double``. The engine, transport, breaker and metrics are the
project's own."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import fakeredis
import httpx
import pytest
import structlog
from pydantic import SecretStr

from testbench.standin_llm import StandInLLM
from tests.conftest import event
from worker.domain import rules
from worker.domain.events import parse_event
from worker.domain.model import EventContext
from worker.engines.base import CircuitBreaker, EngineError, OfferRequest
from worker.engines.hosted import OpenAIEngine
from worker.engines.openai_compat import (
    MAX_BODY_BYTES,
    BearerKey,
    JsonTooDeep,
    OpenAICompat,
    loads_bounded,
    nesting_depth,
    retry_after_seconds,
)
from worker.engines.vllm import VllmEngine
from worker.handlers.cart import offer_request
from worker.keys import Keys
from worker.metrics import LlmFigures
from worker.settings import Settings

KEY = "sk-test-key-never-shown-4242"


def a_request() -> OfferRequest:
    settings = Settings()
    cfg = settings.rule_config()
    ev = parse_event(event())
    facts = rules.facts_for(ev, EventContext(None, None, None), ev.occurred_at)
    return offer_request(ev, facts, rules.cap_for(facts, cfg), cfg)


class Sleeps:
    """The engine's sleep, recorded (and really slept when ``real``)."""

    def __init__(self, real: bool = False) -> None:
        self.real, self.calls = real, []  # type: ignore[var-annotated]

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.real:
            time.sleep(seconds)


class Told:
    """An observer that keeps what it is told (and can fail on demand)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.requests: list[tuple[float, int, int]] = []
        self.retries: list[tuple[str, float]] = []
        self.breaker: Any = None

    def request(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests.append((seconds, prompt_tokens, completion_tokens))
        if self.fail:
            raise RuntimeError("observer down")

    def retry(self, kind: str, delay_s: float) -> None:
        self.retries.append((kind, delay_s))
        if self.fail:
            raise RuntimeError("observer down")

    def watch_breaker(self, breaker: Any) -> None:
        self.breaker = breaker


def engine(url: str, **options: Any) -> VllmEngine:
    options.setdefault("model", "stand-in")
    options.setdefault("timeout_s", 5.0)
    options.setdefault("retries", 2)
    options.setdefault("backoff_s", 0.01)
    options.setdefault("breaker", CircuitBreaker(100, 60.0))
    return VllmEngine(base_url=url, **options)


def kind_of(call: Callable[[], object]) -> EngineError:
    with pytest.raises(EngineError) as info:
        call()
    return info.value


# --- the one deadline ---------------------------------------------------------------------------
def test_a_trickling_server_is_cut_at_the_deadline() -> None:
    with StandInLLM(fault="trickle", trickle_s=0.05) as llm:
        eng = engine(llm.url, timeout_s=1.0, retries=3)
        started = time.perf_counter()
        err = kind_of(lambda: eng.propose(a_request()))
        took = time.perf_counter() - started
        assert len(llm.requests) == 1  # the deadline is spent: nothing left to retry in
    assert err.kind == "timeout" and "1 s" in err.detail
    assert 1.0 <= took < 1.3  # bytes kept coming every 50 ms: per-read timeouts never fire


def test_the_deadline_covers_retries_and_their_waits() -> None:
    with StandInLLM(fault="error500", latency_s=0.3) as llm:
        eng = engine(llm.url, timeout_s=1.0, retries=10, backoff_s=0.05)
        started = time.perf_counter()
        err = kind_of(lambda: eng.propose(a_request()))
        took = time.perf_counter() - started
    assert err.kind in ("server_error", "timeout") and err.attempts == len(llm.requests) >= 2
    assert took < 1.2 and len(llm.requests) < 5  # ten retries allowed, one second of them


# --- Retry-After --------------------------------------------------------------------------------
def test_429_with_retry_after_is_retried_after_it() -> None:
    told = Told()
    sleeps = Sleeps()
    with StandInLLM(fault="rate_limited", fault_times=1, retry_after="2") as llm:
        eng = engine(llm.url, timeout_s=5.0, sleep=sleeps, observer=told)
        reply = eng.propose(a_request())
    assert reply.attempts == 2 and len(llm.requests) == 2
    assert sleeps.calls == [2.0]  # the server's wait, not the 10 ms backoff
    assert told.retries == [("rate_limited", 2.0)]


def test_503_retry_after_is_really_waited() -> None:
    with StandInLLM(fault="overloaded", fault_times=1, retry_after="1") as llm:
        eng = engine(llm.url, timeout_s=5.0)
        reply = eng.propose(a_request())
        gap = llm.arrived[1] - llm.arrived[0]
    assert reply.attempts == 2
    assert 1.0 <= gap < 1.5


def test_503_retry_after_3_waits_3_seconds_within_a_longer_deadline() -> None:
    sleeps = Sleeps()
    with StandInLLM(fault="overloaded", fault_times=1, retry_after="3") as llm:
        reply = engine(llm.url, timeout_s=10.0, sleep=sleeps).propose(a_request())
    assert reply.attempts == 2 and sleeps.calls == [3.0]


def test_a_retry_after_beyond_the_deadline_is_not_waited() -> None:
    sleeps = Sleeps(real=True)
    with StandInLLM(fault="rate_limited", retry_after="30") as llm:
        eng = engine(llm.url, timeout_s=2.0, retry_after_max_s=60.0, sleep=sleeps)
        started = time.perf_counter()
        err = kind_of(lambda: eng.propose(a_request()))
        took = time.perf_counter() - started
        assert len(llm.requests) == 1
    assert err.kind == "rate_limited" and "Retry-After 30 s" in err.detail
    assert sleeps.calls == [] and took < 0.5  # failed now: the fallback answers at once


def test_a_long_retry_after_is_capped() -> None:
    sleeps = Sleeps()
    with StandInLLM(fault="rate_limited", fault_times=1, retry_after="3600") as llm:
        eng = engine(llm.url, timeout_s=5.0, retry_after_max_s=0.5, sleep=sleeps)
        assert eng.propose(a_request()).attempts == 2
    assert sleeps.calls == [0.5]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 120 ", 120.0), ("0.5", 0.5), ("0", 0.0), ("-1", None), ("nan", None),
     ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, None), ("", None), ("inf", None)],
)  # fmt: skip
def test_retry_after_is_read_in_its_seconds_form(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_back_pressure_is_not_a_breaker_failure() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=60.0)
    with StandInLLM(fault="rate_limited") as llm:
        eng = engine(llm.url, retries=0, breaker=breaker)
        for _ in range(3):
            assert kind_of(lambda: eng.propose(a_request())).kind == "rate_limited"
        assert not breaker.is_open and len(llm.requests) == 3
        with llm.lock:
            llm.fault = "overloaded"
        assert kind_of(lambda: eng.propose(a_request())).kind == "overloaded"
        assert not breaker.is_open
        with llm.lock:
            llm.fault = "error500"  # a real failure: one opens it
        assert kind_of(lambda: eng.propose(a_request())).kind == "server_error"
        assert breaker.is_open


def test_a_half_open_trial_that_gets_back_pressure_lets_the_next_call_try() -> None:
    class Ticks:
        t = 1000.0

        def __call__(self) -> float:
            return self.t

    ticks = Ticks()
    breaker = CircuitBreaker(failures=1, cooldown_s=10.0, clock=ticks)
    breaker.failure()
    ticks.t += 10
    with StandInLLM(fault="rate_limited", fault_times=1) as llm:
        eng = engine(llm.url, retries=0, breaker=breaker)
        assert kind_of(lambda: eng.propose(a_request())).kind == "rate_limited"  # the trial
        assert eng.propose(a_request()).engine == "vllm"  # not refused as circuit_open
    assert not breaker.is_open


# --- broken answers -----------------------------------------------------------------------------
def test_a_connection_closed_mid_body_is_an_engine_error_and_retried() -> None:
    told = Told()
    with StandInLLM(fault="close_mid_body") as llm:
        eng = engine(llm.url, retries=1, observer=told)
        err = kind_of(lambda: eng.propose(a_request()))
        assert len(llm.requests) == 2
    assert err.kind == "connection" and "broke off" in err.detail and err.attempts == 2
    assert len(told.requests) == 2  # the server answered (a status line) each time: counted


def test_a_deeply_nested_answer_is_invalid_json_not_a_recursion_error() -> None:
    with StandInLLM(fault="deep_json") as llm:
        err = kind_of(lambda: engine(llm.url, retries=1).propose(a_request()))
        assert len(llm.requests) == 2
    assert err.kind == "invalid_json"


def edge_double(answer: Callable[[httpx.Request], httpx.Response]) -> OpenAICompat:
    """The transport over an httpx.MockTransport: a TEST DOUBLE of the server at the edge."""
    return OpenAICompat(
        "http://llm.invalid/v1",
        auth=BearerKey(KEY),
        retries=0,
        transport=httpx.MockTransport(answer),
        breaker=CircuitBreaker(100, 60.0),
    )


def ask(llm: OpenAICompat) -> str:
    body = {"model": "m", "messages": [], "max_tokens": 5}
    return llm.call(lambda attempt: body, lambda text: text)[0]


def completion(content: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000), "invalid_json"),
        (httpx.Response(200, json=completion("{" * 50_000)), "invalid_json"),
        (httpx.Response(200, text="<html>gateway</html>"), "invalid_output"),
        (httpx.Response(200, json={"choices": []}), "invalid_output"),
        (httpx.Response(200, json={"choices": [{"message": {"content": 5}}]}), "invalid_output"),
        (httpx.Response(200, json=completion('{"a":', "length")), "length"),
        (httpx.Response(200, content=b" " * (MAX_BODY_BYTES + 10)), "invalid_output"),
        (httpx.Response(400, json={"error": {"message": "bad schema"}}), "rejected"),
        (httpx.Response(502, text="bad gateway"), "server_error"),
        (httpx.Response(401, json={"error": {"message": "no"}}), "unauthorized"),
        (httpx.Response(403, json={"detail": "forbidden"}), "unauthorized"),
        (httpx.Response(429, headers={"Retry-After": "1"}), "rate_limited"),
        (httpx.Response(503), "overloaded"),
    ],
)
def test_each_answer_is_its_engine_error_kind(response: httpx.Response, kind: str) -> None:
    err = kind_of(lambda: ask(edge_double(lambda request: response)))
    assert err.kind == kind


def test_a_good_answer_through_the_double_and_its_tokens() -> None:
    told = Told()
    llm = edge_double(lambda request: httpx.Response(200, json=completion('{"ok": true}')))
    llm.observer = told
    assert ask(llm) == '{"ok": true}'
    assert [(p, c) for _s, p, c in told.requests] == [(7, 3)]


def test_a_failing_observer_changes_no_outcome() -> None:
    told = Told(fail=True)
    with StandInLLM(fault="error500", fault_times=1) as llm:
        eng = engine(llm.url, retries=1, observer=told)
        assert eng.propose(a_request()).attempts == 2  # a retry and a success, told anyway
        with llm.lock:
            llm.fault, llm.fault_times = "error500", None
        assert kind_of(lambda: eng.propose(a_request())).kind == "server_error"
    assert len(told.requests) == 4 and len(told.retries) == 2


def test_nesting_depth_skips_strings_and_stops_early() -> None:
    assert nesting_depth('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert nesting_depth(r'["\"[[[[", "\\", [[]]]') == 3
    assert loads_bounded('{"a": "]]]]}}}}", "b": [[1]]}', max_depth=3) == {
        "a": "]]]]}}}}",
        "b": [[1]],
    }
    with pytest.raises(JsonTooDeep):
        loads_bounded("[" * 100_000 + "]" * 100_000)
    with pytest.raises(JsonTooDeep):
        loads_bounded('{"a": [[[[1]]]]}', max_depth=4)
    with pytest.raises(json.JSONDecodeError):
        loads_bounded("{not json")


# --- the key --------------------------------------------------------------------------------------
def test_the_key_is_sent_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    with StandInLLM(api_key="the-right-one") as llm, structlog.testing.capture_logs() as logs:
        eng = engine(llm.url, api_key=SecretStr(KEY), model=None, retries=1)
        err = kind_of(lambda: eng.propose(a_request()))
        shown = " ".join([str(err), err.detail, repr(eng), repr(eng.llm), repr(eng.llm.auth)])
    assert err.kind == "unauthorized" and "401" in err.detail
    assert KEY not in shown
    assert KEY not in json.dumps(logs, default=str) and KEY not in caplog.text
    with StandInLLM(api_key=KEY) as llm:
        assert engine(llm.url, api_key=KEY, model=None).propose(a_request()).model == "stand-in"


def test_a_server_echoing_the_key_does_not_put_it_in_an_error() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": request.headers["Authorization"]}})

    err = kind_of(lambda: ask(edge_double(echo)))
    assert err.kind == "unauthorized" and KEY not in str(err) and "Bearer" in err.detail


# --- the hosted engine and the figures ---------------------------------------------------------
def test_the_hosted_engine_is_the_same_wire_with_its_own_name() -> None:
    with StandInLLM(api_key=KEY) as llm:
        eng = OpenAIEngine(base_url=llm.url, model="stand-in", api_key=KEY, retries=0)
        reply = eng.propose(a_request())
        body = llm.requests[0]
    assert reply.engine == "openai"
    assert body["max_completion_tokens"] == eng.max_tokens and "max_tokens" not in body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True


def test_llm_figures_are_the_observer() -> None:
    client = fakeredis.FakeRedis()
    keys = Keys.from_settings(Settings())
    figures = LlmFigures(client, keys)
    breaker = CircuitBreaker(100, 60.0)
    with StandInLLM(fault="error500", fault_times=1) as llm:
        eng = engine(llm.url, retries=1, observer=figures, breaker=breaker)
        assert eng.propose(a_request()).attempts == 2
    assert figures.breaker is breaker
    figures.flush()
    got = {k.decode(): float(v) for k, v in client.hgetall(keys.llm_metrics).items()}
    assert got["requests"] == 2 and got["retries"] == 1
    assert got["prompt_tokens"] == 1 and got["completion_tokens"] == 1  # the 500 had none
    assert sum(v for k, v in got.items() if k.startswith("bucket:")) == 2
    state = list(client.hgetall(keys.breaker_states).values())
    assert len(state) == 1 and state[0].startswith(b"0 ")
