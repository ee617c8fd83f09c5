"""The claims check (worker/domain/claims.py) against a hostile corpus of its own
(tests/corpora/claims_hostile.txt: what small models wrote, and worse) and the sentences it must
let through (tests/corpora/claims_benign.txt); the free-text path refuses and records them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.claims import ClaimFacts, claim_problems, reasoning_contradictions

CORPORA = Path(__file__).resolve().parents[1] / "corpora"


def _lines(name: str) -> list[str]:
    text = (CORPORA / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


HOSTILE = [
    tuple(part.strip() for part in line.split("|", 1)) for line in _lines("claims_hostile.txt")
]
BENIGN = _lines("claims_benign.txt")


def test_the_corpora_are_large_enough_and_cover_every_kind() -> None:
    kinds = {kind for kind, _ in HOSTILE}
    assert len(HOSTILE) >= 60 and len(BENIGN) >= 10
    expected = {"refund", "free_shipping", "gift", "guarantee", "price_match", "denies_cart"}
    assert kinds >= expected | {"scarcity", "deadline", "exclusive", "internals", "relationship"}
    assert "order_status" in kinds


@pytest.mark.parametrize(("kind", "text"), HOSTILE)
def test_every_hostile_message_is_refused_for_its_claim(kind: str, text: str) -> None:
    facts = ClaimFacts(inventory="in_stock", new_customer=kind == "relationship")
    problems = claim_problems(text, facts)
    assert any(p.startswith(f"message_claims_{kind}:") for p in problems), (text, problems)


@pytest.mark.parametrize("text", BENIGN)
def test_plain_sentences_pass(text: str) -> None:
    assert claim_problems(text, ClaimFacts(new_customer=True)) == []


def test_scarcity_is_true_only_where_stock_is_low() -> None:
    text = "Some items in your cart are running low, so come back soon to get them."
    assert claim_problems(text, ClaimFacts(inventory="low_stock")) == []
    assert claim_problems(text, ClaimFacts(inventory="in_stock"))[0].startswith(
        "message_claims_scarcity"
    )


def test_before_it_expires_needs_an_offer_with_an_expiry() -> None:
    text = "Finish your order before it expires."
    assert claim_problems(text, ClaimFacts(offer_expires=True)) == []
    assert claim_problems(text, ClaimFacts(offer_expires=False)) == [
        "message_claims_expiry: 'before it expires'"
    ]


@given(st.text(max_size=200))
def test_any_text_gets_a_list_of_named_problems(text: str) -> None:
    for problem in claim_problems(text, ClaimFacts(inventory="in_stock", new_customer=True)):
        assert problem.startswith("message_claims_")


@pytest.mark.parametrize(
    ("texts", "segment", "inventory", "orders", "expected"),
    [
        (
            ["low churn, loyal", "large cart, many past orders"],
            "new_customer",
            "in_stock",
            0,
            ["loyal_not_loyal", "history_but_new", "low_churn_not_low"],
        ),
        (["no history yet"], "high_churn", "in_stock", 4, ["new_but_returning"]),
        (
            ["new customer, small cart, low stock"],
            "new_customer",
            "in_stock",
            0,
            ["low_stock_not_low"],
        ),
        (["returning customer, likely to leave"], "high_churn", "in_stock", 4, []),
        (["loyal customer, unlikely to leave"], "low_churn+loyal", "in_stock", 19, []),
        (["new customer, no past orders"], "new_customer", "low_stock", 0, []),
        (["not loyal yet"], "mid_churn", "in_stock", 2, []),
    ],
)
def test_reasoning_that_contradicts_the_systems_facts_is_named(
    texts: list[str], segment: str, inventory: str, orders: int, expected: list[str]
) -> None:
    assert reasoning_contradictions(texts, segment, inventory, orders) == expected
