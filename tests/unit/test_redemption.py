"""worker/redemption.py on both hot stores: the answers `sgr codes` and the API share, each
refusal's kind, one discount per order, and the Idempotency-Key rows (migration 0005)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stores.base import HotStore
from stores.hot import open_hot_store
from worker.domain.codes import InvalidCode, new_code
from worker.domain.model import Offer
from worker.redemption import Order, redeem_code, verify_code

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def hot(hot_store_url: str, tmp_path: Path) -> Iterator[HotStore]:
    store = open_hot_store(hot_store_url, tmp_path / "hot.sqlite")
    yield store
    store.close()


def offer(hot: HotStore, user: str, currency: str = "EUR", hours: float = 48) -> str:
    code = new_code()
    hot.insert_offer(
        Offer(
            offer_id=f"o-{code[-9:]}", event_id=f"e-{code[-9:]}", session_id="s", user_id=user,
            currency=currency, cart_value=50.0, margin=0.4, segment="mid", cap_pct=10.0,
            discount_pct=8.0, code=code, expires_at=NOW + timedelta(hours=hours),
            engine="policy", model=None, reasoning={}, message="Hi", guardrail=None,
            created_at=NOW - timedelta(hours=1),
        )
    )  # fmt: skip
    return code


def kind(run: object) -> str:
    with pytest.raises(InvalidCode) as info:
        run()  # type: ignore[operator]
    return info.value.kind


def test_verify_then_redeem_once_with_the_order(hot: HotStore) -> None:
    code = offer(hot, "u1")
    assert verify_code(hot, code, "u1", NOW).as_json()["status"] == "valid"
    assert kind(lambda: verify_code(hot, code, "u2", NOW)) == "not_yours"
    usd = Order("ord-1", 50.0, "USD")
    assert kind(lambda: redeem_code(hot, code, "u1", NOW, usd)) == "currency_mismatch"
    answer = redeem_code(hot, code, "u1", NOW, Order("ord-1", 50.0, "EUR")).as_json()
    assert answer["status"] == "redeemed" and answer["discount_amount"] == 4.0
    assert answer["order_id"] == "ord-1" and answer["user_id"] == "u1"
    assert kind(lambda: redeem_code(hot, code, "u1", NOW)) == "redeemed"
    other = offer(hot, "u1b")
    assert kind(lambda: redeem_code(hot, other, "u1b", NOW, Order("ord-1"))) == "order_used"
    assert redeem_code(hot, other, "u1b", NOW, Order("ord-2")).as_json()["order_id"] == "ord-2"


def test_a_whole_percentage_is_a_float_in_verify_and_redeem_alike(hot: HotStore) -> None:
    """SQLite's RETURNING gives a REAL holding a whole number as an int: the redeem answer said
    ``"discount_pct": 2`` where verify and the offers routes said ``2.0``."""
    code = offer(hot, "u6")
    valid = json.dumps(verify_code(hot, code, "u6", NOW).as_json())
    done = json.dumps(redeem_code(hot, code, "u6", NOW).as_json())
    assert '"discount_pct": 8.0,' in valid and '"discount_pct": 8.0,' in done
    state = hot.code_state(code)
    assert state is not None and type(state.discount_pct) is float


def test_each_refusal_has_its_kind(hot: HotStore) -> None:
    assert kind(lambda: redeem_code(hot, new_code(), None, NOW)) == "unknown"
    old = offer(hot, "u3", hours=-1)
    assert kind(lambda: redeem_code(hot, old, "u3", NOW)) == "expired"
    mine = offer(hot, "u4")
    assert kind(lambda: redeem_code(hot, mine, "u5", NOW)) == "not_yours"
    state = hot.code_state(mine)
    assert state is not None and state.redeemed_at is None  # a refusal redeems nothing


def test_an_idempotency_key_is_claimed_once_and_forgotten_after_its_retention(
    hot: HotStore,
) -> None:
    with hot.transaction():
        assert hot.claim_idempotency("k1", "idem", "h1", NOW)
        hot.finish_idempotency("k1", "idem", 200, '{"ok": 1}')
    with hot.transaction():
        assert not hot.claim_idempotency("k1", "idem", "h2", NOW)
    kept = hot.stored_answer("k1", "idem")
    assert kept is not None and (kept.request_hash, kept.status, kept.body) == (
        "h1", 200, '{"ok": 1}'
    )  # fmt: skip
    assert hot.stored_answer("k2", "idem") is None  # per API key
    assert not hot.forget_idempotency("k1", "idem", NOW)
    assert hot.forget_idempotency("k1", "idem", NOW + timedelta(seconds=1))
    assert hot.stored_answer("k1", "idem") is None


def test_answers_past_their_retention_are_purged(hot: HotStore) -> None:
    with hot.transaction():
        assert hot.claim_idempotency("k", "old", "h", NOW - timedelta(hours=30))
        assert hot.claim_idempotency("k", "new", "h", NOW)
    assert hot.purge_idempotency(NOW - timedelta(hours=24)) == 1
    assert hot.stored_answer("k", "old") is None and hot.stored_answer("k", "new") is not None
