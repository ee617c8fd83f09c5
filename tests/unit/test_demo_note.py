"""`sgr demo` says in one plain sentence when offers came from the rules engine, and why."""

from __future__ import annotations

from pathlib import Path

import fakeredis

from testbench.demo import rules_engine_note
from tests.conftest import event, make_deps
from worker.domain.events import parse_event
from worker.runner import process


def test_no_sentence_when_the_model_wrote_every_offer() -> None:
    assert rules_engine_note("vllm", 11, [], {"timeout_s": 60.0, "warmup_s": 9.0}) is None


def test_the_sentence_names_the_main_reason_and_the_deadline() -> None:
    reasons = ["engine_timeout: no answer within 30 s", "engine_timeout: x", "message_repetition"]
    note = rules_engine_note("vllm", 11, reasons, {"timeout_s": 90.0, "warmup_s": 15.0})
    assert note == (
        "3 of 11 offers came from the rules engine, mostly because the model did not answer "
        "in time (the model had 90 s per answer)."
    )


def test_the_sentence_when_no_model_was_used() -> None:
    note = rules_engine_note("policy", 7, [None] * 7, None)
    assert note is not None and note.startswith("All 7 offers came from the rules engine")


def test_the_store_reads_the_reasons_of_the_rules_engines_offers(data_dir: Path) -> None:
    deps = make_deps(data_dir, fakeredis.FakeRedis())
    process(parse_event(event()), deps)
    assert deps.hot.rules_engine_reasons() == [None]
