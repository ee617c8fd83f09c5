"""The event contract: what a shop puts on the queue (versioned, strict, with clear errors)."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")

SCHEMA_VERSION: Literal[1] = 1
MAX_MESSAGE_CHARS = 2000
MAX_ITEMS = 200
# How far a given ``value`` / ``margin`` may lie from what the cart's ``items`` add up to (a cent
# of rounding; half a percentage point of margin, e.g. 0.333 sent as 0.33). Beyond: refused.
VALUE_TOLERANCE = 0.01
MARGIN_TOLERANCE = 0.005
CART_DISAGREES = "cart_disagrees_with_items"
CART_ABOVE_LIMIT = "cart_above_limit"
MAX_CART_VALUE = 10_000_000  # a cart's value, given or derived from its items


class EventType(StrEnum):
    CART_UPDATED = "cart_updated"
    ITEM_ADDED = "item_added"
    ITEM_REMOVED = "item_removed"
    CHECKOUT_STARTED = "checkout_started"
    CART_ABANDONED = "cart_abandoned"
    ORDER_COMPLETED = "order_completed"
    CUSTOMER_MESSAGE = "customer_message"


Inventory = Literal["in_stock", "low_stock", "out_of_stock"]
# Times outside these years are refused whatever the settings say (they cannot even be converted
# to UTC at the edges: 0001-01-01T00:00:00+14:00 overflows).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _number(value: Any) -> Any:
    """A JSON number, and only that: booleans and strings are refused, so are NaN and infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"must be a JSON number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a JSON integer, not {type(value).__name__}")
    return value


def _ident(value: Any) -> Any:
    """An id as the shop sent it: text with no surrounding whitespace and no control, format or
    bidirectional characters. Ids are compared exactly (case included): the shop's backend, not
    the customer, chooses them, and should send each in one spelling."""
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise ValueError(f"must not contain the character U+{ord(ch):04X}")
    return value


def _time(value: Any) -> Any:
    """An ISO-8601 text with a zone (numbers are not times)."""
    if not isinstance(value, str | datetime):
        raise ValueError(f"must be an ISO-8601 time text with a zone, not {type(value).__name__}")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # pydantic says what is wrong with it
    else:
        moment = value
    if moment.tzinfo is not None:
        try:
            utc = moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range (before 2000 or after 2099)") from None
        if not EARLIEST <= utc < LATEST:
            raise ValueError("is out of range (before 2000 or after 2099)")
    return value


Number = BeforeValidator(_number)
# Field before BeforeValidator: the constraints then apply to the text ("String should have at
# least 1 character"), not to a generic value ("at least 1 item after validation").
Ident = Annotated[str, Field(min_length=1, max_length=128), BeforeValidator(_ident)]


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Annotated[str, Field(min_length=1, max_length=64), BeforeValidator(_ident)]
    quantity: Annotated[int, Field(gt=0, le=10_000), BeforeValidator(_integer)]
    unit_price: Annotated[Decimal, Number, Field(ge=0, le=1_000_000, decimal_places=4)]
    unit_cost: Annotated[Decimal, Number, Field(ge=0, le=1_000_000, decimal_places=4)]


class Cart(BaseModel):
    """A cart: either ``value`` and ``margin`` directly, or line items they are derived from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    value: Annotated[float, Number, Field(ge=0, le=MAX_CART_VALUE)] | None = None
    margin: Annotated[float, Number, Field(ge=0, le=1)] | None = None
    items: tuple[LineItem, ...] | None = Field(default=None, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _derive(self) -> Cart:
        if self.items:
            value = sum(i.unit_price * i.quantity for i in self.items)
            cost = sum(i.unit_cost * i.quantity for i in self.items)
            margin = (value - cost) / value if value > 0 else Decimal(0)
            derived = {"value": float(value), "margin": max(0.0, min(1.0, float(margin)))}
            tolerance = {"value": VALUE_TOLERANCE, "margin": MARGIN_TOLERANCE}
            for name in ("value", "margin"):
                given = getattr(self, name)
                if given is None:
                    object.__setattr__(self, name, derived[name])
                elif abs(given - derived[name]) > tolerance[name] + 1e-12 * (1 + derived[name]):
                    # A cart that says one thing and itemizes another: the rules would price a
                    # margin the goods do not have. Refused, never silently trusted either way.
                    raise PydanticCustomError(
                        CART_DISAGREES,
                        "disagrees with the items: given {given}, the items make {derived} "
                        "(tolerance {tolerance})",
                        {
                            "field": name,
                            "given": given,
                            "derived": round(derived[name], 6),
                            "tolerance": tolerance[name],
                        },
                    )
        if self.items and self.value is not None and self.value > MAX_CART_VALUE:
            # derived from the items: the same limit as a value given directly
            raise PydanticCustomError(
                CART_ABOVE_LIMIT,
                "the items make {derived}, above the limit {limit}",
                {"field": "value", "derived": self.value, "limit": MAX_CART_VALUE},
            )
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


def _zone(value: Any) -> Any:
    """An IANA time zone name the worker knows (``Europe/Berlin``)."""
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    if len(value) > 64 or not _ZONE.match(value):
        raise ValueError("is not an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("is not an IANA time zone name") from None
    return value


class Order(BaseModel):
    """What an ``order_completed`` may say of the order (attribution: docs/recovery.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: Ident
    value: Annotated[float, Number, Field(ge=0, le=MAX_CART_VALUE)] | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    code: Annotated[str, Field(min_length=1, max_length=64), BeforeValidator(_ident)] | None = None


class CartEvent(BaseModel):
    """One event of one cart session. Unknown fields are refused, times must carry a zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Ident
    type: EventType
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_time)]
    user_id: Ident
    session_id: Ident
    cart: Cart | None = None
    inventory: Inventory = "in_stock"
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    timezone: Annotated[str, BeforeValidator(_zone)] | None = None  # the customer's, IANA
    order: Order | None = None  # only on order_completed

    @model_validator(mode="after")
    def _needs_cart(self) -> CartEvent:
        if self.order is not None and self.type is not EventType.ORDER_COMPLETED:
            raise ValueError(f"'order' is only for order_completed (got type {self.type.value!r})")
        if self.cart is None and self.type not in (
            EventType.ORDER_COMPLETED,
            EventType.CUSTOMER_MESSAGE,
        ):
            raise ValueError(f"event type {self.type.value!r} needs a 'cart'")
        if self.type is EventType.CUSTOMER_MESSAGE and not self.message:
            raise ValueError("event type 'customer_message' needs a 'message'")
        return self


@dataclass(frozen=True)
class FieldError:
    """One refused field of an event: where it is, what is wrong and, when the line names it,
    the value sent (``sent``: a 1-tuple, so that a JSON null sent reads apart from no value)."""

    field: str
    message: str
    sent: tuple[Any] | None = None

    def line(self) -> str:
        """The contract's ``field: problem (got value)`` line (the value as Python writes it)."""
        got = "" if self.sent is None else f" (got {_short(self.sent[0])})"
        return f"{self.field}: {self.message}{got}"


class InvalidEvent(ValueError):
    """A payload that is not a valid cart event; the text names each field and value."""

    def __init__(self, fields: list[FieldError], event_id: str | None = None) -> None:
        self.fields = fields  # the values as sent: the HTTP API's errors[] (worker/api/events.py)
        self.errors = [f.line() for f in fields]
        self.event_id = event_id
        super().__init__("invalid cart event: " + "; ".join(self.errors))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} chars)" if isinstance(value, str | bytes) else ""
    return text[:limit] + "..." + size


def describe(error: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into refused fields ('field: problem (got value)' lines)."""
    found = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"]]
        if err["type"] in (
            CART_DISAGREES,
            CART_ABOVE_LIMIT,
        ):  # the cart's own check names its field and both values
            loc.append(str(err.get("ctx", {}).get("field", "")))
        field = ".".join(loc) or "<event>"
        plain = err["type"] in ("missing", CART_DISAGREES, CART_ABOVE_LIMIT)
        message = err["msg"].removeprefix("Value error, ")
        found.append(FieldError(field, message, None if plain else (err.get("input"),)))
    return found


@dataclass(frozen=True)
class TimeLimits:
    """How far ``occurred_at`` may lie from the clock: ``max_age`` in the past, ``max_skew`` in
    the future (from the settings ``SGR_EVENT_MAX_AGE_HOURS`` and ``SGR_EVENT_MAX_SKEW_S``)."""

    max_age: timedelta
    max_skew: timedelta


def parse_event(
    payload: Any, now: datetime | None = None, limits: TimeLimits | None = None
) -> CartEvent:
    """Validate a payload (dict or JSON text) into a CartEvent or raise InvalidEvent. With ``now``
    and ``limits``, an ``occurred_at`` too far in the past or the future is refused too."""
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    event_id = event_id if isinstance(event_id, str) else None
    try:
        if isinstance(payload, str | bytes):
            event = CartEvent.model_validate_json(payload)
        elif not isinstance(payload, dict):
            raise InvalidEvent([FieldError("<event>", "expected a JSON object", (payload,))])
        else:
            event = CartEvent.model_validate(payload)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc), event_id) from None
    if now is not None and limits is not None:
        got = event.occurred_at.isoformat()
        if event.occurred_at > now + limits.max_skew:
            ahead = f"is in the future by more than {limits.max_skew}"
            raise InvalidEvent([FieldError("occurred_at", ahead, (got,))], event_id)
        if event.occurred_at < now - limits.max_age:
            old = f"is older than {limits.max_age}"
            raise InvalidEvent([FieldError("occurred_at", old, (got,))], event_id)
    return event
