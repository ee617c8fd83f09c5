"""Verifying and redeeming an offer code over a hot store: the one place ``sgr codes``, the HTTP
API (``POST /v1/codes/{code}/verify|redeem``) and an ``order_completed``'s ``order.code``
(``worker/handlers/cart.py``, ``close_offers``) get their answers from.

An answer is a ``CodeAnswer`` (its ``as_json`` is what ``sgr codes --json`` prints and the API
sends) or an ``InvalidCode`` whose ``kind`` says why (``failure_json``). Redemption is single-use
across processes and hosts because it is one UPDATE (``sql/hot/redeem_offer.sql``) that checks the
code is unredeemed, unexpired, not void, the customer's, in the order's currency and, with an
order id, that the order has no other discount, and returns the offer: one statement when it
succeeds; the reasons are read only when it does not. A redemption with an order id runs in a
transaction holding the order's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stores.base import HotStore
from worker.domain.codes import CodeState, InvalidCode, normalize, usable
from worker.domain.timefmt import to_text

# Every kind of refusal, in the order of `sgr codes`' exit statuses (1 = malformed, 2 = unknown...).
KINDS = (
    "malformed",
    "unknown",
    "redeemed",
    "expired",
    "voided",
    "not_yours",
    "currency_mismatch",
    "order_used",
)


@dataclass(frozen=True)
class Order:
    """The order a code is redeemed for (all optional): a currency other than the offer's is
    refused, an order id may carry one discount only, the cart value gives the amount off."""

    order_id: str | None = None
    cart_value: float | None = None
    currency: str | None = None


@dataclass(frozen=True)
class CodeAnswer:
    """A code that is valid (verify) or was just redeemed (redeem), with its stored offer."""

    status: str  # valid | redeemed
    code: str
    state: CodeState
    user_id: str | None
    order: Order | None = None
    redeemed_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        state = self.state
        out: dict[str, Any] = {
            "status": self.status,
            "code": self.code,
            "offer_id": state.offer_id,
            "discount_pct": state.discount_pct,  # a float from the store (_code_state)
            "currency": state.currency,
            "user_id": state.user_id if state.user_id is not None else self.user_id,
            "expires_at": to_text(state.expires_at),  # the API's and the streams' one form
            "redeemed_at": to_text(self.redeemed_at) if self.redeemed_at else None,
            "order_id": self.order.order_id if self.order else None,
            "discount_amount": None,
        }
        if self.order is not None and self.order.cart_value is not None:
            out["discount_amount"] = round(self.order.cart_value * state.discount_pct / 100, 2)
        return out


def failure_json(exc: InvalidCode, code: str | None) -> dict[str, Any]:
    """A refusal as ``sgr codes --json`` prints it (the API's problem carries the same fields)."""
    return {"status": exc.kind, "code": code, "error": str(exc)}


def canonical(code: str) -> str:
    """The code's canonical form, or InvalidCode (malformed) naming the value."""
    return normalize(code)


def _check(code: str, state: CodeState, user: str | None, order: Order | None) -> None:
    if user is not None and state.user_id is not None and state.user_id != user:
        raise InvalidCode(
            f"code {code} is not an offer to customer {user!r}: only the customer it was made "
            "for can redeem it",
            "not_yours",
        )
    if order is not None and order.currency is not None and order.currency != state.currency:
        raise InvalidCode(
            f"order currency {order.currency!r} is not the offer's currency {state.currency!r}",
            "currency_mismatch",
        )


def verify_code(
    hot: HotStore, code: str, user: str | None, now: datetime, order: Order | None = None
) -> CodeAnswer:
    """Whether ``code`` (canonical) may be redeemed now by ``user`` (None: anyone) for
    ``order``: its answer, or InvalidCode saying why not."""
    state = usable(code, hot.code_state(code), now)
    _check(code, state, user, order)
    return CodeAnswer("valid", code, state, user, order)


def redeem_code(
    hot: HotStore,
    code: str,
    user: str | None,
    now: datetime,
    order: Order | None = None,
    *,
    own_transaction: bool = True,
) -> CodeAnswer:
    """Redeem ``code`` (canonical) once, for ``user`` only (None: any customer's), for ``order``;
    the answer, or InvalidCode: why it is not usable, ``not_yours`` when it is another customer's,
    ``currency_mismatch``, ``order_used`` when the order already had a discount, ``redeemed``
    when another redemption won the race. ``own_transaction=False``: the caller's transaction is
    open already (the API's, with its Idempotency-Key; an order event's write)."""
    order_id = order.order_id if order is not None else None
    currency = order.currency if order is not None else None
    if order_id is not None and own_transaction:
        with hot.transaction():  # the order's lock, then the one UPDATE
            done = hot.redeem_state(code, now, user, order_id, currency)
    else:
        done = hot.redeem_state(code, now, user, order_id, currency)
    if done is not None:  # one statement on the way that succeeds
        return CodeAnswer("redeemed", code, done, user, order, now)
    # not redeemed: say why (unknown, expired, voided, another's, the currency, the order, a race)
    taken = hot.order_redeemed(order_id) if order_id is not None else None
    state = usable(code, hot.code_state(code), now)  # raises if it changed meanwhile
    _check(code, state, user, order)
    if taken is not None:
        raise InvalidCode(
            f"order {order_id!r} already had a discount (code {taken}): one discount per order",
            "order_used",
        )
    if user is not None:  # still usable and the customer's (checked above): cannot happen
        raise InvalidCode(f"code {code} could not be redeemed for customer {user!r}", "not_yours")
    raise InvalidCode(f"code {code} was redeemed meanwhile", "redeemed")
