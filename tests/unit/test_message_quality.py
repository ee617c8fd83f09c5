"""The model's text must read as a message: English, long enough, not a loop (checked beside the
safety checks; a failed check makes the pipeline use the rules engine's message)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.rules import MESSAGE_MIN_CHARS, check_answer, message_quality_problems
from worker.settings import load_settings

GOOD = [
    "Your cart is still waiting for you, and we kept a little thank-you aside for you.",
    "We saved your items. Come back whenever you are ready!",
    "Thank you for visiting us, your picks are right where you left them.",
]
BAD = {
    "Hi there!": "message_too_short",
    "Zwiebel zwiebel zwiebel zwiebel zwiebel": "message_repetition",
    "Merci d'être passé: votre panier vous attend bientôt.": "message_not_english",
    "Ваша корзина ждёт вас, возвращайтесь скорее.": "message_not_english",
    "We miss you, come back. We miss you, come back.": "message_repetition",
    "Come back soon!!!!!!! We are waiting": "message_repetition",
    "great great great shop items great here": "message_repetition",
}


@pytest.mark.parametrize("text", GOOD)
def test_plain_english_messages_pass(text: str) -> None:
    assert message_quality_problems(text) == []


@pytest.mark.parametrize(("text", "check"), BAD.items())
def test_poor_messages_are_named(text: str, check: str) -> None:
    assert any(p.startswith(check) for p in message_quality_problems(text)), text


def test_empty_text_is_the_systems_business() -> None:
    """The check stage passes "" (the system writes the offer sentence): nothing to refuse."""
    assert message_quality_problems("") == []
    assert message_quality_problems("   ") == []


def test_check_answer_includes_the_quality_checks() -> None:
    cfg = load_settings().rule_config()
    assert check_answer(5, 10, GOOD[0], 10, cfg) == []
    assert any(p.startswith("message_too_short") for p in check_answer(5, 10, "Hi!", 10, cfg))


@given(st.text(alphabet="abcdefghij ", min_size=1, max_size=MESSAGE_MIN_CHARS - 1))
def test_anything_shorter_than_the_minimum_is_too_short(text: str) -> None:
    if text.strip():
        assert any(p.startswith("message_too_short") for p in message_quality_problems(text))


@given(st.lists(st.sampled_from(["you", "cart", "back", "the"]), min_size=2, max_size=8))
def test_a_phrase_said_twice_is_repetition(words: list[str]) -> None:
    phrase = " ".join(words + ["still", "here"])
    assert "message_repetition" in message_quality_problems(f"{phrase}, {phrase}")


@given(st.text(max_size=300))
def test_never_crashes(text: str) -> None:
    assert all(isinstance(p, str) for p in message_quality_problems(text))
