"""Offer codes, made by the system, never by the model: short, typeable, random and stored.

A code is ``SGR-`` and 12 characters in three groups of four (``SGR-7KQX-M4TZ-W9HC``), drawn with
``secrets`` from 31 characters that have no look-alikes (no 0/O, no 1/I/L). Input is read case-
and dash-insensitively. Nothing is encoded in a code: it is a random key of its stored offer, so
the percent, the expiry and single use all come from the hot store (``sgr codes redeem``), and a
code cannot be forged by anyone who knows how it is made.

Why random and stored rather than a MAC: 12 characters of 31 are 59.4 bits. With a million live
codes, a guess hits one with probability 1.3e-12; at 100 guesses a second for a code's 48 hours
(17 million guesses), the chance to find any code is about 2e-5. A MAC as short would be no
stronger, and would need a secret that every worker and the shop's redemption share.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from worker.domain.timefmt import to_text

PREFIX = "SGR"
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 12
GROUP = 4
_LOOKALIKES = {"0": "zero", "O": "O", "1": "one", "I": "I", "L": "L"}


class InvalidCode(ValueError):
    """Not an offer code, or not one that may be used now; the text says which and why."""

    def __init__(self, message: str, kind: str = "malformed") -> None:
        super().__init__(message)
        self.kind = kind  # malformed | unknown | redeemed | expired | voided | not_yours | ...


def new_offer_id() -> str:
    return secrets.token_hex(8)


def new_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    groups = [chars[i : i + GROUP] for i in range(0, LENGTH, GROUP)]
    return "-".join([PREFIX, *groups])


def normalize(text: str) -> str:
    """The canonical form of a code as typed (any case, dashes and spaces anywhere)."""
    if not isinstance(text, str):
        raise InvalidCode(f"not an offer code: expected text (got {type(text).__name__})")
    compact = "".join(ch for ch in text.upper() if ch not in "- \t")
    if not compact.startswith(PREFIX):
        raise InvalidCode(f"not an offer code: {text[:40]!r} does not start with {PREFIX}-")
    body = compact[len(PREFIX) :]
    if len(body) != LENGTH:
        raise InvalidCode(
            f"not an offer code: {text[:40]!r} has {len(body)} characters after {PREFIX}-, "
            f"codes have {LENGTH}"
        )
    for ch in body:
        if ch not in ALPHABET:
            hint = " (codes never contain 0, O, 1, I or L)" if ch in _LOOKALIKES else ""
            raise InvalidCode(f"not an offer code: {text[:40]!r} contains {ch!r}{hint}")
    groups = [body[i : i + GROUP] for i in range(0, LENGTH, GROUP)]
    return "-".join([PREFIX, *groups])


@dataclass(frozen=True)
class CodeState:
    """A stored offer's code as redemption sees it."""

    offer_id: str
    discount_pct: float
    currency: str
    expires_at: datetime
    redeemed_at: datetime | None
    voided_at: datetime | None = None  # a counter-offer replaced this offer (negotiation)
    superseded_by: str | None = None  # the offer that replaced it
    user_id: str | None = None  # the customer it was made for
    redeemed_order_id: str | None = None  # the order it was redeemed for (the HTTP API's)


def usable(code: str, state: CodeState | None, now: datetime) -> CodeState:
    """The stored offer of ``code`` if it may be redeemed now; InvalidCode (unknown, redeemed,
    voided by a later counter-offer, or expired, each with its own message) otherwise."""
    if state is None:
        raise InvalidCode(f"unknown code {code}: no offer was made with it", "unknown")
    if state.redeemed_at is not None:
        raise InvalidCode(
            f"code {code} was already redeemed at {to_text(state.redeemed_at)}", "redeemed"
        )
    if state.voided_at is not None:
        raise InvalidCode(
            f"code {code} was replaced by a later offer ({state.superseded_by or 'unknown'}) at "
            f"{to_text(state.voided_at)}",
            "voided",
        )
    if now >= state.expires_at:
        raise InvalidCode(f"code {code} expired at {to_text(state.expires_at)}", "expired")
    return state
