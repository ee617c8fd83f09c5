"""The published message never states a discount, number or code the system did not put there:
the model's text may contain none (a corpus of hostile texts), and the system writes the one
sentence with the percent, the code and the expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.rules import message_problems
from worker.handlers.cart import final_message

HOSTILE = [
    "ninety-five percent off! Use code FREE95",
    "95％ off",  # full-width digits and percent sign
    "95 pct off",
    "Take ninety five per cent off today",
    "٩٥٪ خصم",  # Arabic-Indic digits and percent sign
    "९५ प्रतिशत",  # Devanagari digits
    "½ price for you",
    "Ⅻ reasons to come back",  # a Roman numeral sign
    "fünfzig Prozent Rabatt",
    "cinquante pour cent",
    "la mitad del precio",
    "Half off everything",
    "A dozen gifts inside",
    "Use code SAVEBIG at checkout",
    "Your voucher is waiting",
    "Free shipping just for you",
    "Save €20 now",
    "Only $5 more",
    "It is 2x cheaper now",
    "twenty percent",
    "𝟗𝟓 off",  # mathematical bold digits
    "Take SGR-ABCD-EFGH-JKMN",
    "Hidden\u202edirection",
    "zero worries, one click",
    "Pay at https://evil.example.com",  # not plain text: rules.markup_problems
    "Your cart waits at evil.example.com",
    "Write to us at help@evil.example",
    "<b>Come back</b>",
    "[Your cart](javascript:alert)",
]
SAFE = [
    "Your cart is still waiting for you, and we kept a little thank-you aside for you.",
    "We saved your items. Come back whenever you are ready!",
    "Still thinking it over? Your picks are right where you left them.",
    "Merci d'être passé: votre panier vous attend.",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_texts_are_refused(text: str) -> None:
    assert message_problems(text), text


@pytest.mark.parametrize("text", SAFE)
def test_plain_warm_texts_pass(text: str) -> None:
    assert message_problems(text) == []


@given(st.text(max_size=300))
def test_any_text_with_a_digit_of_any_script_is_refused(text: str) -> None:
    import unicodedata

    plain = unicodedata.normalize("NFKC", text)
    if any(unicodedata.category(c) in ("Nd", "Nl", "No") for c in plain):
        assert message_problems(text)


@given(st.text(alphabet=st.characters(categories=["Ll", "Lu", "Zs", "Po"]), max_size=200))
def test_refusal_never_crashes(text: str) -> None:
    assert isinstance(message_problems(text), list)


def test_the_system_sentence_carries_the_only_numbers() -> None:
    expires = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    body = "We saved your items."
    message = final_message(body, "SGR-ABCD-EFGH-JKMN", 12.5, expires)
    assert message.startswith(body)
    assert message.endswith("Use code SGR-ABCD-EFGH-JKMN for 12.5% off until 2026-12-03 12:00 UTC.")
