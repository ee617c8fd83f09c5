"""Offer codes: short, typeable, random and stored; redemption trusts only the stored offer."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from stores.hot import open_hot_store
from worker.cli import app
from worker.domain.codes import (
    ALPHABET,
    LENGTH,
    CodeState,
    InvalidCode,
    new_code,
    normalize,
    usable,
)
from worker.domain.model import Offer
from worker.redemption import redeem_code

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


# --- `sgr codes redeem`: bound to its customer, on a real SQLite hot store ---------------------
def _store_offer(data_dir: Path, user: str, hours: float = 48.0, code: str | None = None) -> str:
    """One offer to ``user`` in the data folder's hot store (SQLite, migrated as in production);
    its code."""
    now = datetime.now(UTC)  # the command reads the real clock
    code = code or new_code()
    hot = open_hot_store("", data_dir / "hot.sqlite")
    try:
        hot.insert_offer(
            Offer(
                offer_id=f"o-{code[-4:]}", event_id=f"e-{code[-4:]}", session_id="s1",
                user_id=user, currency="EUR", cart_value=120.0, margin=0.4, segment="mid",
                cap_pct=12.0, discount_pct=6.0, code=code, expires_at=now + timedelta(hours=hours),
                engine="policy", model=None, reasoning={}, message="Hello", guardrail=None,
                created_at=now - timedelta(hours=1),
            )
        )  # fmt: skip
    finally:
        hot.close()
    return code


def _redeemed_at(data_dir: Path, code: str) -> datetime | None:
    hot = open_hot_store("", data_dir / "hot.sqlite")
    try:
        state = hot.code_state(code)
    finally:
        hot.close()
    assert state is not None
    return state.redeemed_at


@pytest.fixture
def codes_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    monkeypatch.setenv("SGR_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def sgr(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["codes", *args])
        return result.exit_code, " ".join(result.output.split())

    return sgr


def test_redeem_for_the_customer_it_was_made_for(
    tmp_path: Path, codes_cli: Callable[..., tuple[int, str]]
) -> None:
    code = _store_offer(tmp_path, "u1")
    status, said = codes_cli("redeem", code.lower(), "--user", "u1")
    assert status == 0 and f"redeemed {code} for customer u1" in said and "6% off" in said
    assert _redeemed_at(tmp_path, code) is not None
    status, said = codes_cli("redeem", code, "--user", "u1")
    assert status == 3 and "already redeemed" in said  # once


@pytest.mark.parametrize("other", ["u2", "U1", "u1x", "u"])  # ids are compared exactly
def test_another_customers_code_is_refused_and_stays_usable(
    tmp_path: Path, codes_cli: Callable[..., tuple[int, str]], other: str
) -> None:
    code = _store_offer(tmp_path, "u1")
    status, said = codes_cli("redeem", code, "--user", other)
    assert status == 6, said
    assert f"not_yours: code {code} is not an offer to customer {other!r}" in said
    assert "u1" not in said.replace(f"{other!r}", "")  # the owner is not told to the caller
    assert _redeemed_at(tmp_path, code) is None  # the refusal changed nothing
    status, said = codes_cli("redeem", code, "--user", "u1")
    assert status == 0  # the owner still can


def test_the_unbound_form_needs_any_user_and_neither_form_is_one_clear_error(
    tmp_path: Path, codes_cli: Callable[..., tuple[int, str]]
) -> None:
    code = _store_offer(tmp_path, "u1")
    status, said = codes_cli("redeem", code)
    assert status == 1 and "--user USER_ID" in said and "--any-user" in said
    assert "got neither" in said and "Traceback" not in said
    status, said = codes_cli("redeem", code, "--user", "u1", "--any-user")
    assert status == 1 and "got both" in said
    assert _redeemed_at(tmp_path, code) is None  # a usage error redeems nothing
    status, said = codes_cli("redeem", code, "--user", " u1")
    assert status == 1 and "--user must be a customer id as sent" in said
    status, said = codes_cli("redeem", code, "--any-user")
    assert status == 0 and f"redeemed {code}:" in said and "customer" not in said


@pytest.mark.parametrize(
    ("setup", "status", "kind"),
    [("unknown", 2, "unknown"), ("expired", 4, "expired"), ("malformed", 1, "malformed")],
)
def test_redeem_json_says_the_status_with_the_exit_code(
    tmp_path: Path,
    codes_cli: Callable[..., tuple[int, str]],
    setup: str,
    status: int,
    kind: str,
) -> None:
    code = {
        "unknown": new_code(),
        "expired": _store_offer(tmp_path, "u1", hours=-1),
        "malformed": "FREE95",
    }[setup]
    _store_offer(tmp_path, "u9")  # a store with another offer in it
    got, said = codes_cli("redeem", code, "--user", "u1", "--json")
    assert got == status
    answer = json.loads(said)
    assert answer["status"] == kind and answer["error"]


def test_redeem_json_on_success_and_on_another_customers_code(
    tmp_path: Path, codes_cli: Callable[..., tuple[int, str]]
) -> None:
    code = _store_offer(tmp_path, "u1")
    status, said = codes_cli("redeem", code, "--user", "u2", "--json")
    assert status == 6 and json.loads(said)["status"] == "not_yours"
    status, said = codes_cli("redeem", code, "--user", "u1", "--json")
    assert status == 0
    answer = json.loads(said)
    assert answer.pop("expires_at") and answer.pop("redeemed_at")  # ISO-8601 times
    assert answer == {
        "status": "redeemed",
        "code": code,
        "offer_id": f"o-{code[-4:]}",
        "discount_pct": 6.0,
        "currency": "EUR",
        "user_id": "u1",
        "order_id": None,
        "discount_amount": None,
    }
    status, said = codes_cli("verify", code, "--user", "u1", "--json")  # now redeemed
    assert status == 3 and json.loads(said)["status"] == "redeemed"
    status, said = codes_cli("redeem", "x", "--json")
    assert status == 1 and json.loads(said)["status"] == "usage"


def test_a_redemption_race_is_won_once(tmp_path: Path) -> None:
    """Two redemptions of one code: the hot store's one UPDATE lets one through; the other is told
    it was redeemed meanwhile (not that it was another customer's)."""
    code = _store_offer(tmp_path, "u1")
    first = open_hot_store("", tmp_path / "hot.sqlite")
    second = open_hot_store("", tmp_path / "hot.sqlite")
    now = datetime.now(UTC)
    try:
        assert redeem_code(first, code, "u1", now).state.offer_id == f"o-{code[-4:]}"
        with pytest.raises(InvalidCode) as info:
            redeem_code(second, code, "u1", now)
        assert info.value.kind == "redeemed"
    finally:
        first.close()
        second.close()
