"""`sgr eval`'s report: the rates, the over-cap count and the message checks add up from the
answers (the run itself needs a real server: tests/vllm and the README's run)."""

from __future__ import annotations

from pathlib import Path

from testbench.evaluate import Answer, report


def answer(**kw: object) -> Answer:
    base: dict[str, object] = {
        "cap_pct": 10.0,
        "schema_valid": True,
        "as_is": True,
        "engine": "vllm",
        "discount_pct": 5.0,
        "message": "We saved your cart for you.",
        "problems": (),
        "latency_s": 2.0,
        "tokens": 120,
        "attempts": 1,
    }
    return Answer(**{**base, **kw})  # type: ignore[arg-type]


def test_the_report_counts_what_happened() -> None:
    answers = [
        answer(),
        answer(latency_s=4.0, tokens=140),
        answer(
            as_is=False,
            engine="policy",
            message="Come back, come back, come back.",
            problems=("message_repetition",),
        ),
        answer(
            as_is=False,
            engine="policy",
            message="Nine reasons to come back.",
            problems=("message_has_number: '9'", "message_not_english: 'x'"),
        ),
        answer(
            schema_valid=False,
            as_is=False,
            engine="policy",
            message=None,
            tokens=None,
            problems=("engine_timeout: slow",),
            attempts=3,
        ),
    ]
    r = report(answers, "m", 8, 10.0)
    assert r["carts"] == 5 and r["model"] == "m"
    assert r["schema_valid_rate"] == 0.8
    assert r["accepted_as_is_rate"] == 0.4
    assert r["fallback_offers"] == 3 and r["retried"] == 1 and r["over_cap"] == 0
    assert r["message_checks"]["repetition"] == 1
    assert r["message_checks"]["number"] == 1 and r["message_checks"]["language"] == 1
    assert r["message_checks"]["length"] == 0
    assert r["first_problems"]["engine_timeout"] == 1
    assert r["tokens_per_answer_p50"] == 120
    assert len(r["sample_messages"]) == 3 and len(set(r["sample_messages"])) == 3
    assert r["sample_messages"][0] == answers[0].message  # the most common one first
    assert answers[2].message in r["sample_messages"]  # a refused one included
    assert r["distinct_messages"] == len({a.message for a in answers if a.message})


def test_an_offer_above_its_cap_is_counted() -> None:
    r = report([answer(discount_pct=10.5), answer()], "m", 1, 1.0)
    assert r["over_cap"] == 1


def test_the_recorder_counts_the_tokens_the_server_reported(data_dir: Path) -> None:
    """`sgr eval`'s recorder is the transport's observer: each answer's completion tokens, as the
    OpenAI-compatible server reported them (the stand-in reports 1), reach it."""
    from testbench.evaluate import Recorder
    from testbench.standin_llm import StandInLLM
    from tests.conftest import Clock, event, make_deps
    from worker.domain.events import parse_event
    from worker.engines.base import CircuitBreaker
    from worker.engines.vllm import VllmEngine
    from worker.runner import process

    with StandInLLM() as llm:
        engine = VllmEngine(
            base_url=llm.url, model="stand-in", timeout_s=5.0, retries=0,
            breaker=CircuitBreaker(100, 60.0),
        )  # fmt: skip
        recorder = Recorder(engine)
        deps = make_deps(data_dir, engine=recorder, clock=Clock())  # type: ignore[arg-type]
        ev = parse_event(event(event_id="t1", session="t1", user="u000001", value=150.0))
        assert process(ev, deps).engine == "vllm"
    assert recorder.local.tokens == 1
    assert recorder.local.reply is not None
