"""Offer codes: short, typeable, random and stored; redemption trusts only the stored offer."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.domain.codes import (
    ALPHABET,
    LENGTH,
    CodeState,
    InvalidCode,
    new_code,
    normalize,
    usable,
)

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_codes_are_short_typeable_and_unique() -> None:
    codes = {new_code() for _ in range(20_000)}
    assert len(codes) == 20_000
    for code in list(codes)[:500]:
        body = code.removeprefix("SGR-").replace("-", "")
        assert len(body) == LENGTH <= 12
        assert set(body) <= set(ALPHABET)
        assert not set(body) & set("0O1IL")


def test_input_is_case_dash_and_space_insensitive() -> None:
    code = new_code()
    body = code.removeprefix("SGR-").replace("-", "")
    for typed in (code.lower(), "sgr" + body.lower(), f"SGR {body[:6]} {body[6:]}", f" {code} "):
        assert normalize(typed) == code


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("FREE95", "does not start with SGR"),
        ("SGR-ABCD", "has 4 characters"),
        ("SGR-ABCD-EFGH-JKMNP", "has 13 characters"),
        ("SGR-ABCD-EFGH-JKM0", "codes never contain 0"),
        ("SGR-ABCD-EFGH-JKMO", "codes never contain 0, O"),
        ("SGR-ABCD-EFGH-JKM%", "contains '%'"),
        ("SGR-ZZZZZZZZZZZZZZZ", "has 15 characters"),
        ("", "does not start with SGR"),
    ],
)
def test_malformed_codes_say_what_is_wrong(typed: str, says: str) -> None:
    with pytest.raises(InvalidCode, match=says) as info:
        normalize(typed)
    assert info.value.kind == "malformed"


@given(st.text(alphabet=string.printable + "ＳＧＲ０１２‮\x00é", max_size=40))
def test_normalize_never_crashes(text: str) -> None:
    """Fuzzed input: either a canonical code or InvalidCode, never another exception."""
    try:
        code = normalize(text)
    except InvalidCode:
        return
    assert normalize(code) == code and len(code) == 18


def test_usable_refuses_unknown_redeemed_and_expired_with_distinct_kinds() -> None:
    code = new_code()
    live = CodeState("o1", 12.0, "EUR", NOW + timedelta(hours=48), None)
    assert usable(code, live, NOW) is live
    cases = {
        "unknown": None,
        "redeemed": CodeState("o1", 12.0, "EUR", NOW + timedelta(hours=48), NOW),
        "expired": CodeState("o1", 12.0, "EUR", NOW - timedelta(seconds=1), None),
    }
    messages = set()
    for kind, state in cases.items():
        with pytest.raises(InvalidCode) as info:
            usable(code, state, NOW)
        assert info.value.kind == kind
        messages.add(str(info.value).split(" ")[0] + kind)
    assert len(messages) == 3
