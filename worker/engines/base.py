"""What every engine shares: the request, the reply, the error, the interface, the breaker.

An engine turns an ``OfferRequest`` (an allowed offer with its cap, the cart and the customer)
into an ``EngineReply`` holding a schema-valid ``OfferAnswer``, and a negotiation turn
(``TurnRequest``) into a ``RouteReply`` and a ``PriceReply``, or raises ``EngineError``. A new
engine is one file in this package and one line in ``select.py``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.domain.copy import CopyEntry
from worker.domain.model import History
from worker.domain.rules import Decision
from worker.engines.negotiation_schemas import PriceReply, RouteReply, TurnRequest
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
    # The approved entries this cart may get (worker/domain/copy.py); in catalogue mode the
    # schema's message is an enum of exactly their texts. The rules engine chooses among them.
    copy: tuple[CopyEntry, ...] = ()
    message_mode: str = "free"  # "catalogue" | "free" (SGR_MESSAGE_MODE)

    @property
    def catalogue_mode(self) -> bool:
        return self.message_mode == "catalogue" and bool(self.copy)

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
    """What every engine answers; each method raises ``EngineError`` when it has no usable
    answer. ``route`` and ``price`` return the parsed answer as it came: the caller checks it
    (``rules.counter_offer_problems``, ``rules.message_problems``) and falls back to the rules
    engine."""

    name: str
    model: str | None

    def propose(self, request: OfferRequest) -> EngineReply: ...
    def route(self, request: TurnRequest) -> RouteReply: ...  # negotiation router (SGR union)
    def price(self, request: TurnRequest) -> PriceReply: ...  # negotiation counter-offer


@dataclass
class CircuitBreaker:
    """Opens after ``failures`` failed calls in a row; after ``cooldown_s`` lets exactly one trial
    call through (half-open) while the others are still refused, and closes again if that trial
    succeeds (or re-opens for another cool-down if it fails).

    Shared by the threads of a worker process that ask the LLM concurrently: every change of state
    happens under one lock, so concurrent callers never count a failure twice or all take the
    trial after the cool-down.
    """

    failures: int
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    _consecutive: int = 0
    _opened_at: float | None = None
    _trial_at: float | None = None  # when the one half-open trial went through
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def allow(self) -> bool:
        """May this call go to the engine? Closed: yes. Open and cooling down: no. Cool-down over:
        yes for the first caller (the trial), no for the others until the trial reports back."""
        with self._lock:
            if self._opened_at is None:
                return True
            now = self.clock()
            if now - self._opened_at < self.cooldown_s or self._trial_pending(now):
                return False
            self._trial_at = now
            return True

    def _trial_pending(self, now: float) -> bool:
        # A trial that never reported back (its caller died) stops blocking after a cool-down.
        return self._trial_at is not None and now - self._trial_at < self.cooldown_s

    def success(self) -> None:
        with self._lock:
            self._consecutive, self._opened_at, self._trial_at = 0, None, None

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._trial_at is not None or self._consecutive >= self.failures:
                self._opened_at = self.clock()
            self._trial_at = None

    def release(self) -> None:
        """A call that was neither a success nor a failure (the server pushed back: 429, 503):
        the count is unchanged; a half-open trial ends, so the next caller may try."""
        with self._lock:
            self._trial_at = None

    @property
    def is_open(self) -> bool:
        """Open: calls are refused now (cooling down, or the trial is under way)."""
        with self._lock:
            if self._opened_at is None:
                return False
            now = self.clock()
            return now - self._opened_at < self.cooldown_s or self._trial_pending(now)


def request_seed(event_id: str, attempt: int) -> int:
    """A stable 31-bit sampling seed for one attempt at one event."""
    digest = hashlib.blake2b(f"{event_id}#{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
