"""Offer codes made by the system, never by the model: unique, expiring, verifiable, single-use.

A code is ``SGR-<offer id>-<expiry, base 36>-<discount in basis points>-<HMAC tag>``. The tag is an
HMAC-SHA256 over the offer id, expiry and discount with a secret from the environment, so a code
whose parts are changed does not verify. Single use is enforced by the hot store (``redeemed_at``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "SGR"


@dataclass(frozen=True)
class CodeInfo:
    offer_id: str
    expires_at: datetime
    discount_pct: float


class InvalidCode(ValueError):
    pass


def new_offer_id() -> str:
    return secrets.token_hex(8)


def _b36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if number == 0:
            return out


class CodeSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("SGR_CODE_SECRET must be at least 16 bytes")
        self._secret = secret

    def _tag(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()[:10]
        return base64.b32encode(digest).decode().rstrip("=")

    def issue(self, offer_id: str, expires_at: datetime, discount_pct: float) -> str:
        bps = round(discount_pct * 100)
        body = f"{PREFIX}-{offer_id.upper()}-{_b36(int(expires_at.timestamp()))}-{bps}"
        return f"{body}-{self._tag(body)}"

    def verify(self, code: str, now: datetime | None = None) -> CodeInfo:
        """Check the tag and the expiry; raise InvalidCode saying what is wrong."""
        parts = code.strip().upper().split("-")
        if len(parts) != 5 or parts[0] != PREFIX:
            raise InvalidCode(f"not an offer code: {code!r}")
        body, tag = "-".join(parts[:4]), parts[4]
        if not hmac.compare_digest(self._tag(body), tag):
            raise InvalidCode(f"code {code!r} does not verify (tampered or another secret)")
        expires = datetime.fromtimestamp(int(parts[2], 36), tz=UTC)
        if now is not None and now >= expires:
            raise InvalidCode(f"code {code!r} expired at {expires.isoformat()}")
        return CodeInfo(parts[1].lower(), expires, int(parts[3]) / 100)
