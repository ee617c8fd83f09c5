"""The vLLM engine: any OpenAI-compatible server (vLLM), asked for JSON constrained by the
request's bounded schema (``response_format`` json_schema, strict; xgrammar in vLLM)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import structlog

from worker.engines import prompts
from worker.engines.base import CircuitBreaker, EngineError, EngineReply, OfferRequest, request_seed
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
from worker.engines.schemas import AnswerInvalid, validate_answer
from worker.settings import redact_url

log = structlog.get_logger("sgr.engine")


T = TypeVar("T")
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
    temperature: float = 0.5
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(3, 30.0))
    sleep: Callable[[float], None] = time.sleep
    name: str = "vllm"

    @property
    def where(self) -> str:
        """The endpoint as logs and errors show it (credentials redacted)."""
        return redact_url(self.base_url)

    def __post_init__(self) -> None:
        import openai  # imported here: a worker on the rules engine never pays for it

        self._openai = openai
        # Several threads of a process may ask at once (worker/runner.py): the OpenAI client and
        # its HTTP pool are thread-safe; the model is discovered once, under this lock.
        self._model_lock = threading.Lock()
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=self.timeout_s,
            max_retries=0,
        )

    def discover_model(self) -> str:
        """The configured model, or the first one the server lists at /v1/models (asked once)."""
        if self.model is not None:
            return self.model
        with self._model_lock:
            return self._discover()

    def _discover(self) -> str:
        if self.model is None:
            try:
                models = self.client.models.list().data
                first = models[0].id if models else None
            except self._openai.APIConnectionError as exc:
                raise EngineError("connection", f"{self.where}: {exc}") from None
            except Exception as exc:  # e.g. an HTML page answered with status 200
                raise EngineError(
                    "invalid_output",
                    f"{self.where}/models is not an OpenAI-compatible model list: "
                    f"{type(exc).__name__}: {str(exc)[:120]}",
                ) from None
            if not isinstance(first, str) or not first:
                raise EngineError("no_model", f"{self.where}/models lists no model")
            self.model = first
            log.info("llm_model_discovered", model=self.model, url=self.where)
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

    def propose(self, request: OfferRequest) -> EngineReply:
        """An offer for ``request``: its JSON constrained by the request's bounded schema."""
        answer, attempts, raw = self._ask(
            lambda attempt: self.request_body(request, attempt),
            lambda text: validate_answer(text, request.schema),
        )
        return EngineReply(answer, self.name, self.model, attempts, raw)

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
        schema = pricing_schema(request.cap_pct, request.floor_pct, request.min_pct)
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

        def body(attempt: int) -> dict[str, Any]:
            return {
                "model": self.discover_model(),
                "messages": messages,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": schema, "strict": True},
                },
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "seed": request_seed(seed_key, attempt),
            }

        value, attempts, _raw = self._ask(body, parse)
        return value, attempts

    def _ask(
        self, body: Callable[[int], dict[str, Any]], parse: Callable[[str], T]
    ) -> tuple[T, int, str]:
        """The one retry loop: ``body(attempt)`` sent, the text ``parse``d; retryable failures
        retried with backoff, the breaker told of every outcome (an unexpected error too, so a
        half-open trial always ends)."""
        if not self.breaker.allow():
            raise EngineError("circuit_open", f"{self.where} failed repeatedly; cooling down", 0)
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    text = self._complete(body(attempt))
                    try:
                        value = parse(text)
                    except AnswerInvalid as exc:
                        raise EngineError("invalid_output", str(exc)) from None
                except EngineError as exc:
                    exc.attempts = attempt
                    if exc.kind not in RETRYABLE or attempt > self.retries:
                        self.breaker.failure()
                        raise
                    delay = self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
                    log.warning(
                        "llm_retry", kind=exc.kind, attempt=attempt, delay_s=round(delay, 3)
                    )
                    self.sleep(delay)
                    continue
                self.breaker.success()
                return value, attempt, text
        except EngineError:
            raise
        except BaseException:
            self.breaker.failure()
            raise

    def _complete(self, body: dict[str, Any]) -> str:
        """One chat completion's text, each failure mapped to an EngineError kind. The client's
        plain POST (its documented way to send a body as is): the same wire request as
        chat.completions.create, without the SDK re-walking the JSON schema on every call (about a
        third of the client's CPU per request, measured)."""
        openai = self._openai
        try:
            resp = self.client.post(
                "/chat/completions", cast_to=openai.types.chat.ChatCompletion, body=body
            )
        except openai.APITimeoutError as exc:
            raise EngineError("timeout", str(exc)) from None
        except openai.APIConnectionError as exc:
            raise EngineError("connection", f"{self.where}: {exc}") from None
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
        return text


def endpoint_answers(base_url: str, timeout_s: float = 2.0) -> bool:
    """True if an OpenAI-compatible endpoint lists its models within the timeout."""
    try:
        resp = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout_s)
        data = resp.json().get("data") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "id" in data[0]
