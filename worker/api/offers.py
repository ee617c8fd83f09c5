"""``GET /v1/offers/{offer_id}`` and ``GET /v1/customers/{user_id}/offers`` (live ones)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from stores.base import HotStore
from worker.api.auth import Checkout
from worker.api.problems import ApiProblem, FieldProblem, responses, short
from worker.api.schemas import CustomerOffers, OfferOut, OfferStatus
from worker.domain.model import Offer

router = APIRouter(tags=["offers"])
Ident = Annotated[str, Path(min_length=1, max_length=128)]


def offer_out(offer: Offer, status: OfferStatus) -> OfferOut:
    return OfferOut(
        offer_id=offer.offer_id, event_id=offer.event_id, session_id=offer.session_id,
        user_id=offer.user_id, status=status, code=offer.code, discount_pct=offer.discount_pct,
        currency=offer.currency, cart_value=offer.cart_value, message=offer.message,
        expires_at=offer.expires_at, created_at=offer.created_at,
        published_at=offer.published_at, redeemed_at=offer.redeemed_at,
    )  # fmt: skip


def status_of(hot: HotStore, offer: Offer, now: datetime) -> OfferStatus:
    if offer.redeemed_at is not None:
        return "redeemed"
    state = hot.code_state(offer.code)
    if state is not None and state.voided_at is not None:
        return "voided"
    return "expired" if now >= offer.expires_at else "live"


@router.get(
    "/v1/offers/{offer_id}",
    response_model=OfferOut,
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="One offer, with its status (live, redeemed, expired, voided)",
)
def get_offer(offer_id: Ident, caller: Checkout) -> OfferOut:
    with caller.st.runtime.stores.use() as hot:
        offer = hot.get_offer(offer_id)
        status = status_of(hot, offer, datetime.now(UTC)) if offer is not None else None
    if offer is None or status is None:
        raise ApiProblem(
            404,
            f"no offer {short(offer_id, 60)}",
            kind="unknown_offer",
            errors=[FieldProblem(field="offer_id", value=short(offer_id), message="unknown")],
        )
    return offer_out(offer, status)


@router.get(
    "/v1/customers/{user_id}/offers",
    response_model=CustomerOffers,
    responses=responses(401, 403, 422, 429, 503),
    summary="A customer's live offers (none: an empty list)",
)
def customer_offers(user_id: Ident, caller: Checkout) -> CustomerOffers:
    with caller.st.runtime.stores.use() as hot:
        offers = hot.live_offers(user_id, datetime.now(UTC))
    return CustomerOffers(user_id=user_id, offers=[offer_out(o, "live") for o in offers])
