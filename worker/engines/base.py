"""What every engine shares: the request, the reply, the error, the interface, the breaker.

An engine turns an ``OfferRequest`` (an allowed offer with its cap, the cart and the customer)
into an ``EngineReply`` holding a schema-valid ``OfferAnswer``, or raises ``EngineError``. A new
engine is one file in this package and one line in ``select.py``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from worker.domain.model import History
from worker.domain.rules import Decision
from worker.engines.schemas import OfferAnswer


@dataclass(frozen=True)
class OfferRequest:
    event_id: str
    cart_value: float
    currency: str
    margin: float
    inventory: str
    history: History | None
    customer_message: str | None
    decision: Decision
    min_pct: float
    schema: dict[str, Any]

    @property
    def cap_pct(self) -> float:
        return self.decision.cap_pct

    @property
    def segment(self) -> str:
        return self.decision.segment

    @property
    def steps(self) -> tuple[str, ...]:
        return self.decision.steps


@dataclass(frozen=True)
class EngineReply:
    answer: OfferAnswer
    engine: str
    model: str | None
    attempts: int = 1
    raw: str | None = None


class EngineError(RuntimeError):
    """The engine gave no usable answer. ``kind`` says why, for counting and for the audit."""

    def __init__(self, kind: str, detail: str, attempts: int = 1) -> None:
        self.kind = kind
        self.detail = detail
        self.attempts = attempts
        super().__init__(f"{kind}: {detail}")


class Engine(Protocol):
    name: str

    def propose(self, request: OfferRequest) -> EngineReply: ...


@dataclass
class CircuitBreaker:
    """Opens after ``failures`` failed calls in a row; lets one trial through after ``cooldown_s``."""

    failures: int
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    _consecutive: int = 0
    _opened_at: float | None = None

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        return self.clock() - self._opened_at >= self.cooldown_s

    def success(self) -> None:
        self._consecutive, self._opened_at = 0, None

    def failure(self) -> None:
        self._consecutive += 1
        if self._consecutive >= self.failures:
            self._opened_at = self.clock()

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None and not self.allow()


def request_seed(event_id: str, attempt: int) -> int:
    """A stable 31-bit sampling seed for one attempt at one event."""
    digest = hashlib.blake2b(f"{event_id}#{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
