"""Holdout groups: which customers an experiment holds out of offers, decided by a keyed hash.

A customer's group is HMAC-SHA256 of the user id keyed by ``SGR_EXPERIMENT_SALT``, read as a
number in [0, 1): below the holdout share, ``holdout``. The same customer stays in one group for
as long as the salt stays; a new salt starts a new experiment, whose id (a hash of the salt, never
the salt) is recorded on every row, so a report reads one experiment at a time. Without the salt
nobody can predict a group from a user id, so a customer cannot pick theirs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from worker.domain.lift import Group


@dataclass(frozen=True)
class Experiment:
    """An experiment's share held out (0..0.5) and its key; ``id`` names it in the records."""

    holdout_share: float
    salt: bytes

    @property
    def active(self) -> bool:
        return self.holdout_share > 0 and bool(self.salt)

    @property
    def id(self) -> str:
        if not self.active:
            return ""
        return hmac.new(self.salt, b"sgr-experiment-id", hashlib.sha256).hexdigest()[:16]

    def position(self, user_id: str) -> float:
        """The customer's place in [0, 1), uniform over customers."""
        digest = hmac.new(self.salt, user_id.encode("utf-8"), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def group_of(self, user_id: str) -> Group:
        if not self.active:
            return "treatment"
        return "holdout" if self.position(user_id) < self.holdout_share else "treatment"


NO_EXPERIMENT = Experiment(0.0, b"")


@dataclass(frozen=True)
class EligibleCart:
    """An abandonment the rules allowed an offer for, in an experiment: what it had (or, held
    out, would have had). Treated carts carry their offer's id when one was committed."""

    event_id: str
    experiment: str
    group: Group
    user_id: str
    session_id: str
    segment: str
    cap_pct: float
    cart_value: float
    margin: float
    currency: str
    decided_at: datetime
    offer_id: str | None = None

    def row(self) -> dict[str, object]:
        out = dict(self.__dict__)
        out["grp"] = out.pop("group")
        return out
