"""Engines that write an offer: one small interface, two implementations.

``VllmEngine`` asks any OpenAI-compatible server (vLLM) for JSON constrained by the request's
bounded schema. ``PolicyEngine`` is the deterministic rules engine with a templated message.
``build_engine`` picks one for ``auto``: the endpoint when it answers, otherwise the rules.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from worker import prompts
from worker.rules import Decision, History, RuleConfig, policy_discount
from worker.schemas import AnswerInvalid, OfferAnswer, PricingLogic, RouterSchema, validate_answer

log = structlog.get_logger("sgr.engine")


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


class PolicyEngine:
    """The rules alone: the cap (rounded down to a whole percent) and a plain templated message."""

    name = "policy"

    def __init__(self, rules: RuleConfig | None = None) -> None:
        self.rules = rules or RuleConfig()

    def propose(self, request: OfferRequest) -> EngineReply:
        discount = policy_discount(request.decision, self.rules)
        hist = request.history
        churn = (
            "no history: new customer" if hist is None else f"churn {hist.churn_probability:.2f}"
        )
        answer = OfferAnswer(
            routing=RouterSchema(
                intent="price_sensitive" if request.customer_message else "hesitant",
                tone="friendly",
                summary=f"abandoned cart of {request.cart_value:.2f} {request.currency}",
            ),
            pricing=PricingLogic(
                churn_analysis=f"{churn}; segment {request.segment}"[:240],
                financial_analysis=(
                    f"cart {request.cart_value:.2f} {request.currency}"
                    + ("" if hist is None else f", lifetime value {hist.lifetime_value:.2f}")
                )[:240],
                margin_math="; ".join(request.steps)[:240],
                max_allowed_discount=request.cap_pct,
                discount_percent=discount,
                customer_message="Your cart is still waiting for you, and we kept a little "
                "thank-you aside for you.",
            ),
        )
        return EngineReply(answer=answer, engine=self.name, model="rules")


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


RETRYABLE = {"timeout", "connection", "server_error", "invalid_output", "length"}


@dataclass
class VllmEngine:
    """Any OpenAI-compatible endpoint, asked with ``response_format`` json_schema (strict)."""

    base_url: str
    model: str | None = None
    api_key: str = "EMPTY"
    timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.2
    max_tokens: int = 900
    temperature: float = 0.2
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(3, 30.0))
    sleep: Callable[[float], None] = time.sleep
    name: str = "vllm"

    def __post_init__(self) -> None:
        import openai  # imported here: a worker on the rules engine never pays for it

        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=self.timeout_s,
            max_retries=0,
        )

    def discover_model(self) -> str:
        """The configured model, or the first one the server lists at /v1/models (asked once)."""
        if self.model is None:
            models = self.client.models.list().data
            if not models:
                raise EngineError("no_model", f"{self.base_url}/models lists no model")
            self.model = models[0].id
            log.info("llm_model_discovered", model=self.model, url=self.base_url)
        return self.model

    def request_body(self, request: OfferRequest, attempt: int = 1) -> dict[str, Any]:
        """The chat request. Its sampling seed comes from the event and the attempt: the same
        event asks the same question the same way (a re-run after a crash gets the same answer,
        and a benchmark's direct client the same work), while a retry samples afresh."""
        return {
            "model": self.discover_model(),
            "messages": prompts.messages(request),
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "sgr_offer", "schema": request.schema, "strict": True},
            },
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": request_seed(request.event_id, attempt),
        }

    def _once(self, request: OfferRequest, attempt: int = 1) -> tuple[OfferAnswer, str]:
        openai = self._openai
        try:
            # The client's plain POST (its documented way to send a body as is): the same wire
            # request as chat.completions.create, without the SDK re-walking the JSON schema on
            # every call (about a third of the client's CPU per request, measured).
            resp = self.client.post(
                "/chat/completions",
                cast_to=self._openai.types.chat.ChatCompletion,
                body=self.request_body(request, attempt),
            )
        except openai.APITimeoutError as exc:
            raise EngineError("timeout", str(exc)) from None
        except openai.APIConnectionError as exc:
            raise EngineError("connection", f"{self.base_url}: {exc}") from None
        except openai.InternalServerError as exc:
            raise EngineError("server_error", f"HTTP {exc.status_code}: {exc.message}") from None
        except openai.APIStatusError as exc:
            raise EngineError("rejected", f"HTTP {exc.status_code}: {exc.message}") from None
        except openai.APIError as exc:  # e.g. a 200 whose body is not a chat completion
            raise EngineError("invalid_output", f"{type(exc).__name__}: {exc}") from None
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
        except (IndexError, AttributeError, TypeError) as exc:
            raise EngineError("invalid_output", f"not a chat completion: {exc!r}") from None
        if choice.finish_reason == "length":
            raise EngineError("length", f"stopped at max_tokens={self.max_tokens}: {text[-60:]!r}")
        try:
            return validate_answer(text, request.schema), text
        except AnswerInvalid as exc:
            raise EngineError("invalid_output", str(exc)) from None

    def propose(self, request: OfferRequest) -> EngineReply:
        if not self.breaker.allow():
            raise EngineError("circuit_open", f"{self.base_url} failed repeatedly; cooling down", 0)
        attempt = 0
        while True:
            attempt += 1
            try:
                answer, raw = self._once(request, attempt)
            except EngineError as exc:
                exc.attempts = attempt
                if exc.kind not in RETRYABLE or attempt > self.retries:
                    self.breaker.failure()
                    raise
                delay = self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
                log.warning("llm_retry", kind=exc.kind, attempt=attempt, delay_s=round(delay, 3))
                self.sleep(delay)
                continue
            self.breaker.success()
            return EngineReply(answer, self.name, self.model, attempt, raw)


def request_seed(event_id: str, attempt: int) -> int:
    """A stable 31-bit sampling seed for one attempt at one event."""
    digest = hashlib.blake2b(f"{event_id}#{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def endpoint_answers(base_url: str, timeout_s: float = 2.0) -> bool:
    """True if an OpenAI-compatible endpoint lists its models within the timeout."""
    try:
        resp = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200
