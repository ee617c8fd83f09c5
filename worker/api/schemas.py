"""The API's request and response bodies (their JSON Schemas are the OpenAPI document's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from worker.domain.events import MAX_CART_VALUE, Ident
from worker.domain.timefmt import to_text

# Every time the API answers, in one RFC 3339 form: UTC, microseconds, ``+00:00``
# (``2026-12-01T10:00:00.000000+00:00``), as the Redis streams' entries and the codes' answers
# (``worker/redemption.py``) write it, so a shop parses one format (pydantic would write ``Z``
# and drop zero microseconds).
TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00$"
Timestamp = Annotated[
    datetime,
    PlainSerializer(to_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIME_PATTERN}),
]


class EventsAccepted(BaseModel):
    """Events put on the queue: each ends in exactly one outcome (``GET /v1/events/{id}``); an
    event sent again takes effect once."""

    accepted: list[str] = Field(description="The event ids accepted, in the order sent")
    count: int


class EventOutcome(BaseModel):
    """An event's one recorded outcome."""

    event_id: str
    type: str | None
    user_id: str | None
    session_id: str | None
    outcome: Literal["offer", "no_offer", "dead_letter", "scheduled"] = Field(
        description="`scheduled`: the abandonment's decision waits until `due_at`"
    )
    reason: str | None = Field(description="Why no offer, or the kind of failure")
    offer_id: str | None
    error: str | None = Field(description="A dead letter's error (field and value)")
    attempts: int
    reply: str | None = Field(description="The reply of a customer_message turn")
    route: str | None = Field(description="The route a customer_message turn took")
    turn: int | None
    occurred_at: Timestamp | None
    enqueued_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    due_at: Timestamp | None = Field(
        default=None,
        description="A delayed decision's due time (SGR_OFFER_DELAY_MINUTES, quiet hours)",
    )


OfferStatus = Literal["live", "redeemed", "expired", "voided"]


class OfferOut(BaseModel):
    """An offer as the shop sends it to the customer (the cap and the reasoning stay inside)."""

    offer_id: str
    event_id: str
    session_id: str
    user_id: str
    status: OfferStatus
    code: str
    discount_pct: float
    currency: str
    cart_value: float
    message: str
    expires_at: Timestamp
    created_at: Timestamp
    published_at: Timestamp | None
    redeemed_at: Timestamp | None


class CustomerOffers(BaseModel):
    user_id: str
    offers: list[OfferOut] = Field(description="Live offers, newest first")


class OrderIn(BaseModel):
    """The order a code is used for: another currency than the offer's is refused; an order id
    takes one discount."""

    model_config = ConfigDict(extra="forbid")

    order_id: Ident | None = None
    cart_value: Annotated[float, Field(gt=0, le=MAX_CART_VALUE, allow_inf_nan=False)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Ident | None = Field(default=None, description="The customer: another's is refused")
    order: OrderIn | None = None


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Ident = Field(description="The customer redeeming: another customer's code is refused")
    order: OrderIn | None = None


class CodeOut(BaseModel):
    """A valid code (verify) or one just redeemed (redeem): what ``sgr codes ... --json`` says."""

    status: Literal["valid", "redeemed"]
    code: str
    offer_id: str
    discount_pct: float
    currency: str
    user_id: str | None
    expires_at: Timestamp
    redeemed_at: Timestamp | None
    order_id: str | None
    discount_amount: float | None = Field(description="cart_value x discount_pct, when given")


class Health(BaseModel):
    status: Literal["ok"]
