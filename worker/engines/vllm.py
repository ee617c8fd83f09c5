"""The vLLM engine: any OpenAI-compatible server (vLLM), asked for JSON constrained by the
request's bounded schema (``response_format`` json_schema, strict; xgrammar in vLLM).

This file builds the request bodies and parses the answers; the wire (client, credentials, the
one deadline, retries, breaker, error kinds, LLM figures) is ``worker/engines/openai_compat.py``,
shared with the hosted engine (``worker/engines/hosted.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import structlog
from pydantic import SecretStr

from worker.engines import prompts
from worker.engines.base import (
    CircuitBreaker,
    EngineError,
    EngineReply,
    OfferRequest,
    request_seed,
)
from worker.engines.negotiation_prompts import pricing_messages, router_messages
from worker.engines.negotiation_schemas import (
    PriceReply,
    RouteReply,
    TurnRequest,
    parse_pricing,
    parse_router,
    pricing_schema,
    router_schema,
)
from worker.engines.openai_compat import (
    PROBE_TIMEOUT_S,
    RETRYABLE,
    BearerKey,
    LlmObserver,
    NoObserver,
    OpenAICompat,
)
from worker.engines.schemas import AnswerInvalid, validate_answer

log = structlog.get_logger("sgr.engine")

__all__ = ["RETRYABLE", "VllmEngine", "endpoint_answers"]

T = TypeVar("T")


@dataclass
class VllmEngine:
    """Any OpenAI-compatible endpoint, asked with ``response_format`` json_schema (strict).
    ``timeout_s`` is the one deadline of an answer (every attempt and wait together)."""

    base_url: str
    model: str | None = None
    api_key: SecretStr | str = field(default="EMPTY", repr=False)
    timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.2
    max_tokens: int = 900
    temperature: float = 0.5
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(3, 30.0))
    sleep: Callable[[float], None] = time.sleep
    name: str = "vllm"
    observer: LlmObserver = field(default_factory=NoObserver, repr=False)
    retry_after_max_s: float = 10.0
    timeout_ceiling_s: float | None = None  # set by the warm-up: how far a timeout raises it
    # The body's field for the answer's token limit (OpenAI's newer name in hosted.py).
    token_limit_field: ClassVar[str] = "max_tokens"

    @property
    def where(self) -> str:
        """The endpoint as logs and errors show it (credentials redacted)."""
        return self.llm.where

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, SecretStr):
            self.api_key = SecretStr(self.api_key)
        # Several threads of a process may ask at once (worker/runner.py): the client and its
        # pool are thread-safe; the model is discovered once, under this lock.
        self._model_lock = threading.Lock()
        self.llm = OpenAICompat(
            base_url=self.base_url,
            auth=BearerKey(self.api_key),
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            retry_after_max_s=self.retry_after_max_s,
            breaker=self.breaker,
            observer=self.observer,
            sleep=lambda seconds: self.sleep(seconds),  # the engine's, even if replaced later
        )

    def discover_model(self) -> str:
        """The configured model, or the first one the server lists at /v1/models (asked once)."""
        if self.model is not None:
            return self.model
        with self._model_lock:
            return self._discover()

    def _discover(self) -> str:
        if self.model is None:
            self.model = self.llm.models()[0]
            log.info("llm_model_discovered", model=self.model, url=self.where)
        return self.model

    def request_body(self, request: OfferRequest, attempt: int = 1) -> dict[str, Any]:
        """The chat request. Its sampling seed comes from the event and the attempt: the same
        event asks the same question the same way (a re-run after a crash gets the same answer,
        and a benchmark's direct client the same work), while a retry samples afresh."""
        return self.body(
            prompts.messages(request), request.schema, "sgr_offer", request.event_id, attempt
        )

    def body(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        name: str,
        seed_key: str,
        attempt: int,
    ) -> dict[str, Any]:
        """Every chat request's body: JSON constrained by ``schema`` (json_schema, strict)."""
        return {
            "model": self.discover_model(),
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            },
            self.token_limit_field: self.max_tokens,
            "temperature": self.temperature,
            "seed": request_seed(seed_key, attempt),
        }

    def propose(self, request: OfferRequest) -> EngineReply:
        """An offer for ``request``: its JSON constrained by the request's bounded schema."""
        answer, attempts, raw = self._ask(
            lambda attempt: self.request_body(request, attempt),
            lambda text: validate_answer(text, request.schema),
        )
        return EngineReply(answer, self.name, self.model, attempts, raw)

    def warm_up(self, request: OfferRequest, within_s: float) -> float:
        """One offer request answered once (no retry, no breaker), within ``within_s``: the
        seconds it took, to size the deadline from (``worker/runtime.size_llm_timeout``). It also
        warms the server (its first answers after a start are the slowest). EngineError if no
        valid answer came in time."""
        started = time.monotonic()
        with self.llm.deadline.until(started + within_s):
            text = self.llm.complete(self.request_body(request, attempt=0))
        try:
            validate_answer(text, request.schema)
        except AnswerInvalid as exc:
            raise EngineError("invalid_output", str(exc)) from None
        return time.monotonic() - started

    def set_timeout(self, seconds: float, ceiling_s: float | None = None) -> None:
        """The deadline of an answer from now on (every attempt and wait together); with
        ``ceiling_s``, a timed-out answer raises it by half, up to that ceiling."""
        self.timeout_s = seconds
        self.llm.timeout_s = seconds
        if ceiling_s is not None:
            self.timeout_ceiling_s = ceiling_s

    def _longer_after_timeout(self) -> None:
        ceiling = self.timeout_ceiling_s
        if ceiling is not None and self.timeout_s < ceiling:
            longer = round(min(ceiling, self.timeout_s * 1.5), 1)
            log.warning("llm_timeout_raised", timeout_s=longer, ceiling_s=ceiling)
            self.set_timeout(longer)

    # --- negotiation turns (worker/handlers/message.py) ---------------------------------------------
    def route(self, request: TurnRequest) -> RouteReply:
        """The router's answer to a turn (the SGR union of actions), parsed, not yet checked."""
        schema = router_schema(offer_on_the_table=request.live_offer is not None)
        answer, attempts = self.ask_json(
            router_messages(request),
            schema,
            lambda text: parse_router(text, schema),
            name="sgr_route",
            seed_key=f"{request.event_id}#route",
        )
        return RouteReply(answer, self.name, self.model, attempts)

    def price(self, request: TurnRequest) -> PriceReply:
        """The counter-offer of a turn within the schema's bounds, parsed; the caller checks it
        with ``rules.counter_offer_problems``."""
        schema = pricing_schema(
            request.cap_pct, request.floor_pct, request.min_pct, request.ceiling_pct
        )
        answer, attempts = self.ask_json(
            pricing_messages(request),
            schema,
            lambda text: parse_pricing(text, schema),
            name="sgr_turn_price",
            seed_key=f"{request.event_id}#price",
        )
        return PriceReply(answer, self.name, self.model, attempts)

    # --- any schema-constrained JSON (negotiation turns: worker/handlers/message.py) ---------------
    def ask_json(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        parse: Callable[[str], T],
        *,
        name: str,
        seed_key: str,
    ) -> tuple[T, int]:
        """Ask for JSON constrained by ``schema`` (``response_format`` json_schema, strict) and
        ``parse`` the reply (which raises AnswerInvalid); with the same retries, backoff, breaker
        and error kinds as ``propose``. Returns the parsed value and the attempts it took."""

        value, attempts, _raw = self._ask(
            lambda attempt: self.body(messages, schema, name, seed_key, attempt), parse
        )
        return value, attempts

    def _ask(
        self, body: Callable[[int], dict[str, Any]], parse: Callable[[str], T]
    ) -> tuple[T, int, str]:
        """The one retry loop, in the shared transport (``OpenAICompat.call``); a timeout
        raises the deadline for the next answers (``set_timeout``'s ceiling)."""
        try:
            return self.llm.call(body, parse)
        except EngineError as exc:
            if exc.kind == "timeout":
                self._longer_after_timeout()
            raise


def endpoint_answers(
    base_url: str, timeout_s: float = PROBE_TIMEOUT_S, api_key: SecretStr | str = "EMPTY"
) -> bool:
    """True if an OpenAI-compatible endpoint lists its models within the timeout (asked with
    ``api_key``)."""
    llm = OpenAICompat(base_url, auth=BearerKey(api_key), timeout_s=timeout_s)
    try:
        return bool(llm.probe(timeout_s).models)
    finally:
        llm.close()
