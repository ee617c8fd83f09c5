"""The deadline of an answer sized from the server's measured speed (``SGR_LLM_WARMUP``): one
warm-up answer timed at start, the deadline ``WARMUP_SAFETY`` times that, never below
``SGR_LLM_TIMEOUT_S`` nor past what ``SGR_JOB_TIMEOUT_S`` leaves. The server is an
OpenAI-compatible STAND-IN at the edge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbench.standin_llm import StandInLLM
from tests.conftest import make_runtime
from worker.engines.base import EngineError
from worker.engines.vllm import VllmEngine
from worker.runtime import (
    llm_timeout_ceiling,
    size_llm_timeout,
    sized_timeout,
    warmup_factor,
)
from worker.settings import Settings


@given(
    measured=st.floats(0.0, 500.0),
    configured=st.floats(1.0, 60.0),
    ceiling=st.floats(1.0, 300.0),
    concurrency=st.integers(1, 64),
)
def test_the_sized_deadline_is_bounded(
    measured: float, configured: float, ceiling: float, concurrency: int
) -> None:
    got = sized_timeout(measured, configured, ceiling, concurrency)
    assert configured - 0.05 - 1e-9 <= got <= max(ceiling, configured) + 0.05 + 1e-9
    wanted = measured * warmup_factor(concurrency)
    if configured <= wanted <= ceiling:
        assert abs(got - wanted) <= 0.05 + 1e-9  # rounded to a tenth
    assert warmup_factor(concurrency) == 3


def test_the_ceiling_is_what_the_job_timeout_leaves() -> None:
    s = Settings(job_timeout_s=300, llm_retries=1, llm_timeout_s=30, llm_backoff_s=0.2)
    assert llm_timeout_ceiling(s) == pytest.approx((300 - 0.4) / 2 - 1)
    # a negotiation turn asks twice in a row, each answer within one deadline (retries inside)
    assert 2 * llm_timeout_ceiling(s) + s.llm_backoff_s * 2**s.llm_retries < s.job_timeout_s


@pytest.mark.parametrize(("latency", "expected"), [(0.0, 2.0), (1.0, 3.0)])
def test_a_slow_server_gets_a_longer_deadline(
    data_dir: Path, latency: float, expected: float
) -> None:
    runtime = make_runtime(data_dir, fakeredis.FakeRedis(), llm_timeout_s=2.0, job_timeout_s=60)
    with StandInLLM(latency_s=latency) as llm:
        engine = VllmEngine(base_url=llm.url, timeout_s=2.0, retries=0)
        runtime = replace(runtime, deps=replace(runtime.deps, engine=engine))
        sized = size_llm_timeout(runtime)
        asked = llm.requests[0]
        assert len(llm.requests) == 8  # SGR_LLM_CONCURRENCY answers at once
    assert sized is not None and sized["why"] is None
    assert engine.timeout_s == engine.llm.timeout_s == sized["timeout_s"]
    assert expected <= sized["timeout_s"] <= expected + 1.5  # 3 x the slowest of 8 at once
    assert len(llm.requests) == 8 and engine.timeout_ceiling_s == llm_timeout_ceiling(
        runtime.settings
    )
    enum = asked["response_format"]["json_schema"]["schema"]["properties"]["pricing"]
    assert "enum" in enum["properties"]["customer_message"]  # a real offer request


def test_a_failed_warm_up_keeps_the_configured_deadline(data_dir: Path) -> None:
    runtime = make_runtime(data_dir, fakeredis.FakeRedis(), llm_timeout_s=2.0, job_timeout_s=60)
    with StandInLLM(fault="error500") as llm:
        engine = VllmEngine(base_url=llm.url, timeout_s=2.0, retries=0)
        runtime = replace(runtime, deps=replace(runtime.deps, engine=engine))
        sized = size_llm_timeout(runtime)
    assert sized == {"warmup_s": None, "timeout_s": 2.0, "why": "server_error"}
    assert engine.timeout_s == 2.0 and not engine.breaker.is_open


def test_no_warm_up_for_the_rules_engine_or_when_off(data_dir: Path) -> None:
    runtime = make_runtime(data_dir, fakeredis.FakeRedis())
    assert size_llm_timeout(runtime) is None
    off = make_runtime(data_dir, fakeredis.FakeRedis(), llm_warmup=False)
    with StandInLLM() as llm:
        engine = VllmEngine(base_url=llm.url, timeout_s=2.0, retries=0)
        off = replace(off, deps=replace(off.deps, engine=engine))
        assert size_llm_timeout(off) is None and llm.requests == []


def test_a_timeout_raises_the_deadline_up_to_the_ceiling() -> None:
    with StandInLLM(latency_s=1.0) as llm:
        engine = VllmEngine(base_url=llm.url, timeout_s=0.3, retries=0)
        engine.set_timeout(0.3, ceiling_s=0.5)
        schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
        for expected in (0.5, 0.5):  # 0.3 x 1.5 = 0.45, then the ceiling
            with pytest.raises(EngineError) as info:
                engine.ask_json([], schema, lambda t: t, name="x", seed_key="k")
            assert info.value.kind == "timeout"
            assert engine.timeout_s == engine.llm.timeout_s <= expected
        assert engine.timeout_s == 0.5
