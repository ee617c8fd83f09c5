"""A negotiation's typed values: the turns of a session's conversation, the customer's live offer
(the one record of what the customer was offered, shared with the abandonment offers), and the
stream entry a reply without a price is published as."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from worker.domain.timefmt import from_text, to_text

# What the router may decide for a customer's message (the union the model answers with).
ROUTES = ("price", "respond", "escalate", "accept")

# The fields a reply's stream entry carries, in this order (README: "The result stream").
REPLY_STREAM_FIELDS = (
    "type",
    "reply_id",
    "event_id",
    "session_id",
    "user_id",
    "turn",
    "route",
    "reason",
    "message",
    "discount_pct",
    "cap_pct",
    "offer_id",
    "code",
    "engine",
    "model",
    "created_at",
)


@dataclass(frozen=True)
class LiveOffer:
    """The customer's newest offer that no later offer replaced (voided), whatever its state."""

    offer_id: str
    session_id: str
    code: str
    discount_pct: float
    cap_pct: float
    expires_at: datetime
    redeemed_at: datetime | None
    created_at: datetime

    def usable(self, now: datetime) -> bool:
        return self.redeemed_at is None and now < self.expires_at


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: the customer's words, the route taken, the reply sent (with the
    offer made in it, if any) and the reasoning behind it."""

    event_id: str
    session_id: str
    user_id: str
    turn: int  # 1, 2, ... within the session (assigned by the store on insert)
    message: str
    route: str
    reason: str | None  # why no (new) price was given, when the route was "price"
    reply: str
    reasoning: dict[str, Any]
    offer_id: str | None
    discount_pct: float | None
    cap_pct: float | None
    code: str | None
    engine: str
    model: str | None
    problems: tuple[str, ...] | None
    created_at: datetime
    published_at: datetime | None = None

    @property
    def reply_id(self) -> str:
        """The id of the turn's stream entry (and of its exactly-once marker)."""
        return f"reply-{self.event_id}"

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "reasoning":
                value = json.dumps(value)
            elif f.name == "problems":
                value = None if value is None else json.dumps(list(value))
            elif isinstance(value, datetime):
                value = to_text(value)
            out[f.name] = value
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Turn:
        data = {f.name: row.get(f.name) for f in fields(cls)}
        if isinstance(data["reasoning"], str):
            data["reasoning"] = json.loads(data["reasoning"])
        problems = data["problems"]
        if isinstance(problems, str):
            problems = json.loads(problems)
        data["problems"] = tuple(problems) if problems else None
        for name in ("created_at", "published_at"):
            if isinstance(data[name], str):
                data[name] = from_text(data[name])
        return cls(**data)  # type: ignore[arg-type]

    def stream_entry(self) -> dict[str, str]:
        """The result stream's entry for this turn (``type`` "reply"); an offer made in the turn
        is published as its own ``type`` "offer" entry instead."""
        values: dict[str, Any] = {
            name: getattr(self, name) for name in REPLY_STREAM_FIELDS if hasattr(self, name)
        }
        values["type"] = "reply"
        values["message"] = self.reply  # what the shop sends; the customer's words stay here
        values = {name: values[name] for name in REPLY_STREAM_FIELDS}
        return {
            k: "" if v is None else to_text(v) if isinstance(v, datetime) else str(v)
            for k, v in values.items()
        }


@dataclass(frozen=True)
class Conversation:
    """What the hot store knows of a session's negotiation before a turn."""

    turns: tuple[Turn, ...]  # oldest first (the newest ones, up to the asked limit)
    live_offer: LiveOffer | None  # the customer's, from any session

    @property
    def accepted(self) -> bool:
        """The customer accepted the live offer in this session (a turn routed "accept" since it
        was made): it is not repeated, nor raised."""
        live = self.live_offer
        return live is not None and any(
            t.route == "accept" and t.created_at >= live.created_at for t in self.turns
        )

    @property
    def price_turns(self) -> int:
        """Turns of this session routed to price so far (the rules concede one step each)."""
        return sum(t.route == "price" for t in self.turns)

    @property
    def next_turn(self) -> int:
        return (self.turns[-1].turn + 1) if self.turns else 1
