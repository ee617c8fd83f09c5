"""The event contract: what a shop puts on the queue (versioned, strict, with clear errors)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION: Literal[1] = 1
MAX_MESSAGE_CHARS = 2000
MAX_ITEMS = 200


class EventType(StrEnum):
    CART_UPDATED = "cart_updated"
    ITEM_ADDED = "item_added"
    ITEM_REMOVED = "item_removed"
    CHECKOUT_STARTED = "checkout_started"
    CART_ABANDONED = "cart_abandoned"
    ORDER_COMPLETED = "order_completed"
    CUSTOMER_MESSAGE = "customer_message"


Inventory = Literal["in_stock", "low_stock", "out_of_stock"]
Ident = Field(min_length=1, max_length=128)


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=10_000)
    unit_price: Decimal = Field(ge=0, le=1_000_000, max_digits=14, decimal_places=4)
    unit_cost: Decimal = Field(ge=0, le=1_000_000, max_digits=14, decimal_places=4)


class Cart(BaseModel):
    """A cart: either ``value`` and ``margin`` directly, or line items they are derived from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    value: float | None = Field(default=None, ge=0, le=10_000_000)
    margin: float | None = Field(default=None, ge=0, le=1)
    items: tuple[LineItem, ...] | None = Field(default=None, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _derive(self) -> Cart:
        if self.items:
            value = sum(i.unit_price * i.quantity for i in self.items)
            cost = sum(i.unit_cost * i.quantity for i in self.items)
            if self.value is None:
                object.__setattr__(self, "value", float(value))
            if self.margin is None:
                margin = (value - cost) / value if value > 0 else Decimal(0)
                object.__setattr__(self, "margin", max(0.0, min(1.0, float(margin))))
        if self.value is None or self.margin is None:
            raise ValueError("a cart needs 'value' and 'margin', or 'items' to derive them from")
        return self

    @property
    def total(self) -> float:
        assert self.value is not None
        return self.value

    @property
    def margin_fraction(self) -> float:
        assert self.margin is not None
        return self.margin


class CartEvent(BaseModel):
    """One event of one cart session. Unknown fields are refused, times must carry a zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Ident
    type: EventType
    occurred_at: AwareDatetime
    user_id: str = Ident
    session_id: str = Ident
    cart: Cart | None = None
    inventory: Inventory = "in_stock"
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)

    @model_validator(mode="after")
    def _needs_cart(self) -> CartEvent:
        if self.cart is None and self.type not in (
            EventType.ORDER_COMPLETED,
            EventType.CUSTOMER_MESSAGE,
        ):
            raise ValueError(f"event type {self.type.value!r} needs a 'cart'")
        if self.type is EventType.CUSTOMER_MESSAGE and not self.message:
            raise ValueError("event type 'customer_message' needs a 'message'")
        return self


class InvalidEvent(ValueError):
    """A payload that is not a valid cart event; the text names each field and value."""

    def __init__(self, errors: list[str], event_id: str | None = None) -> None:
        self.errors = errors
        self.event_id = event_id
        super().__init__("invalid cart event: " + "; ".join(errors))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} chars)" if isinstance(value, str | bytes) else ""
    return text[:limit] + "..." + size


def describe(error: ValidationError) -> list[str]:
    """Turn pydantic's errors into 'field: problem (got value)' lines."""
    lines = []
    for err in error.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<event>"
        got = "" if err["type"] == "missing" else f" (got {_short(err.get('input'))})"
        lines.append(f"{field}: {err['msg']}{got}")
    return lines


def parse_event(payload: Any) -> CartEvent:
    """Validate a payload (dict or JSON text) into a CartEvent or raise InvalidEvent."""
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    try:
        if isinstance(payload, str | bytes):
            return CartEvent.model_validate_json(payload)
        if not isinstance(payload, dict):
            raise InvalidEvent([f"<event>: expected a JSON object (got {_short(payload)})"])
        return CartEvent.model_validate(payload)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc), event_id if isinstance(event_id, str) else None) from None
