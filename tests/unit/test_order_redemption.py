"""An ``order_completed`` naming ``order.code`` redeems it through the one place codes are
redeemed (``worker/redemption.py``: the customer's, unexpired, not void, in the order's currency,
one discount per order id), on both hot stores: the order id is recorded on the offer, a refusal
is logged with its kind and kept on the order (``orders.code_refused``), and one discount per
order holds between ``sgr codes redeem`` / the API and the order path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import structlog

from tests.conftest import NOW, Clock, event, make_deps
from worker.deps import Deps
from worker.domain.codes import InvalidCode, new_code
from worker.domain.events import parse_event
from worker.domain.model import Offer
from worker.redemption import Order, redeem_code
from worker.runner import run


@pytest.fixture
def deps(data_dir: Path, hot_store_url: str) -> Deps:
    return make_deps(data_dir, fakeredis.FakeRedis(), clock=Clock(NOW), hot_store_url=hot_store_url)


def offer(deps: Deps, user: str, currency: str = "EUR", hours: float = 48) -> str:
    code = new_code()
    deps.hot.insert_offer(
        Offer(
            offer_id=f"o-{code[-9:]}", event_id=f"e-{code[-9:]}", session_id=f"s-{user}",
            user_id=user, currency=currency, cart_value=50.0, margin=0.4, segment="mid",
            cap_pct=10.0, discount_pct=8.0, code=code, expires_at=NOW + timedelta(hours=hours),
            engine="policy", model=None, reasoning={}, message="Hi", guardrail=None,
            created_at=NOW - timedelta(hours=1),
        )
    )  # fmt: skip
    return code


def order(deps: Deps, event_id: str, user: str, **block: Any) -> list[dict[str, Any]]:
    """Run one order_completed through the runner; the log lines of the order's code."""
    payload = event("order_completed", event_id=event_id, user=user, session=f"s-{event_id}",
                    order={"value": 50.0, **block})  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        outcome = run([parse_event(payload)], deps)[0]
    assert (outcome.outcome, outcome.reason) == ("no_offer", "not_a_trigger")  # type: ignore[union-attr]
    return [e for e in logs if e["event"].startswith("order_code_")]


def refused(deps: Deps, event_id: str) -> str | None:
    row = deps.hot.get_order(event_id)
    assert row is not None
    return row["code_refused"]


def attributed(deps: Deps, code: str) -> str:
    rows = [r for r in deps.hot.attribution(24, NOW + timedelta(hours=1)) if r["code"] == code]
    assert len(rows) == 1
    return str(rows[0]["attribution"])


def test_the_customers_code_is_redeemed_for_the_order_and_its_id_recorded(deps: Deps) -> None:
    code = offer(deps, "u1")
    logs = order(deps, "ev1", "u1", order_id="ord-1", currency="EUR", code=code.lower())
    state = deps.hot.code_state(code)
    assert state is not None and state.redeemed_at == NOW and state.redeemed_order_id == "ord-1"
    row = deps.hot.get_order("ev1")
    assert row is not None and row["code"] == code and row["code_refused"] is None
    assert [e["event"] for e in logs] == ["order_code_redeemed"]
    assert attributed(deps, code) == "redeemed"
    order(deps, "ev1", "u1", order_id="ord-1", currency="EUR", code=code)  # a replay: nothing more
    assert deps.hot.code_state(code) == state


@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("another customer's", "not_yours"),
        ("currency", "currency_mismatch"),
        ("expired", "expired"),
        ("unknown", "unknown"),
        ("malformed", "malformed"),
    ],
)
def test_a_code_the_order_may_not_use_is_not_redeemed_and_the_refusal_is_kept(
    deps: Deps, case: str, kind: str
) -> None:
    mine = offer(deps, "u1")
    code = {
        "another customer's": offer(deps, "u2"),
        "currency": mine,
        "expired": offer(deps, "u1", hours=-1),
        "unknown": new_code(),
        "malformed": "SAVE10",
    }[case]
    currency = "USD" if case == "currency" else "EUR"
    logs = order(deps, "ev1", "u1", order_id="ord-1", currency=currency, code=code)
    assert refused(deps, "ev1") == kind
    assert [(e["event"], e["kind"], e["log_level"]) for e in logs] == [
        ("order_code_refused", kind, "warning")
    ]
    assert deps.hot.order_redeemed("ord-1") is None  # the order had no discount
    if case != "unknown" and case != "malformed":
        state = deps.hot.code_state(code)
        assert state is not None and state.redeemed_at is None
    # the customer ordered without the discount: the offer converted, it was not redeemed
    assert attributed(deps, mine) == "converted"
    # the order closes the customer's live offers, the refused code among them (not another's)
    mine_now = deps.hot.code_state(mine)
    assert mine_now is not None and mine_now.voided_at is not None
    if case == "another customer's":
        theirs = deps.hot.code_state(code)
        assert theirs is not None and theirs.voided_at is None and theirs.redeemed_at is None


def kind(call: Any) -> str:
    with pytest.raises(InvalidCode) as info:
        call()
    return info.value.kind


def test_one_discount_per_order_between_the_api_and_the_order_path(deps: Deps) -> None:
    hot = deps.hot
    # redeemed over the API (or `sgr codes redeem`) for ord-1, then the order names it: fine
    first = offer(deps, "u1")
    redeem_code(hot, first, "u1", NOW - timedelta(minutes=1), Order("ord-1", 50.0, "EUR"))
    logs = order(deps, "ev1", "u1", order_id="ord-1", currency="EUR", code=first)
    assert refused(deps, "ev1") is None and [e["event"] for e in logs] == ["order_code_redeemed"]
    state = hot.code_state(first)
    assert state is not None and state.redeemed_order_id == "ord-1"
    assert state.redeemed_at == NOW - timedelta(minutes=1)  # once, as the API did it
    # ord-2 had its discount over the API: the order naming another code gets none more
    had, other = offer(deps, "u2"), offer(deps, "u2")
    redeem_code(hot, had, "u2", NOW, Order("ord-2", 50.0, "EUR"))
    order(deps, "ev2", "u2", order_id="ord-2", currency="EUR", code=other)
    assert refused(deps, "ev2") == "order_used"
    second = hot.code_state(other)
    assert second is not None and second.redeemed_at is None
    # a code redeemed for another order is refused as redeemed
    order(deps, "ev3", "u1", order_id="ord-3", currency="EUR", code=first)
    assert refused(deps, "ev3") == "redeemed" and hot.order_redeemed("ord-3") is None
    # the order path first: the API then refuses a second discount for the same order
    fourth = offer(deps, "u4")
    order(deps, "ev4", "u4", order_id="ord-4", currency="EUR", code=fourth)
    assert hot.order_redeemed("ord-4") == fourth
    fifth = offer(deps, "u4")
    assert kind(lambda: redeem_code(hot, fifth, "u4", NOW, Order("ord-4"))) == "order_used"


def test_a_batch_of_orders_keeps_single_use_and_one_discount_per_order(deps: Deps) -> None:
    """The batch path (several events in one job) redeems through the same place: two orders
    naming one code in one batch give one redemption; the second order's refusal is kept."""
    code = offer(deps, "u1")
    batch = [
        parse_event(event("order_completed", event_id=f"bev{n}", user="u1", session=f"bs{n}",
                          order={"value": 50.0, "order_id": f"bord-{n}", "currency": "EUR",
                                 "code": code}))
        for n in (1, 2)
    ]  # fmt: skip
    outcomes = run(batch, deps)
    assert len(outcomes) == 2
    state = deps.hot.code_state(code)
    assert state is not None and state.redeemed_order_id == "bord-1"
    assert (refused(deps, "bev1"), refused(deps, "bev2")) == (None, "redeemed")
    assert deps.hot.order_redeemed("bord-2") is None
