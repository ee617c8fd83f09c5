"""The one OpenAI-compatible transport: HTTP client, credentials, deadline, retries, breaker,
error kinds and LLM figures, shared by every engine that speaks ``/v1/chat/completions`` (vLLM,
a hosted API). An engine only builds its request bodies and parses its answers.

Deadline. One call (``OpenAICompat.call``: every attempt at one answer, its retries and the waits
between them) has ONE total deadline, ``timeout_s`` (``SGR_LLM_TIMEOUT_S``): connecting, sending
and reading all count against it. httpx's own timeouts are per operation (a read timeout restarts
with every byte), so a server trickling one byte a second would never time out; here every socket
operation is given the time left until the deadline (``DeadlineTransport``: an httpcore network
backend whose streams read a thread-local deadline), so the call ends at the deadline whatever the
server does, with ``EngineError("timeout")``.

Retries: tenacity, not the SDK's. The OpenAI SDK's retry loop knows neither this deadline nor the
breaker, retries inside one call where the metrics callbacks cannot see it, and waits a 429's
``Retry-After`` even when the answer is no longer wanted. tenacity runs the loop in the open: what
is retried (``RETRYABLE``), how long to wait (``Retry-After`` in seconds, capped at
``retry_after_max_s``; otherwise exponential backoff with jitter), and when to stop (after
``retries`` retries, or when the wait would end at or past the deadline: a ``Retry-After`` beyond
the deadline is not waited, the call fails now and the caller falls back at once).

Breaker. Told once per call: a success closes it, a failure counts; back-pressure (429, 503) is the
server saying it is alive and busy, and is not counted as a failure (a half-open trial that got it
is released, so the next call may try).

Errors. Whatever happens on the wire (refused, reset, closed mid-body, an HTML page, a body nested
100 000 deep) comes out as ``EngineError(kind, detail)``; a failing observer never changes that.
The detail names the endpoint with its credentials redacted; the API key is never in a detail,
a log line or a repr (it is sent in the ``Authorization`` header only, by ``BearerKey``).

The OpenAI SDK is not used: two endpoints and a few fields of their answers are all an engine
needs, and the plain client lets the transport bound the time, the body's size and its nesting.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpcore
import httpx
import structlog
import tenacity
from pydantic import SecretStr

from worker.engines.base import CircuitBreaker, EngineError
from worker.engines.schemas import AnswerInvalid
from worker.settings import redact_url

log = structlog.get_logger("sgr.engine")

T = TypeVar("T")
RETRYABLE = frozenset(
    {
        "timeout",
        "connection",
        "server_error",
        "rate_limited",
        "overloaded",
        "invalid_output",
        "invalid_json",
        "length",
    }
)
BACK_PRESSURE = frozenset({"rate_limited", "overloaded"})  # not a breaker failure
MAX_BODY_BYTES = 4 * 1024 * 1024  # a chat completion is a few KiB; an error page more is refused
MAX_JSON_DEPTH = 32  # a chat completion nests 5 deep, an SGR answer 4
PROBE_TIMEOUT_S = 2.0


# --- JSON with its nesting bounded --------------------------------------------------------------
class JsonTooDeep(ValueError):
    """A JSON text nested deeper than allowed (json.loads would recurse on it)."""


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def nesting_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep ``[`` and ``{`` nest outside strings; the scan stops as soon as it passes
    ``limit`` (so a hostile text costs at most one pass)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in ("]", "}"):
            depth = max(0, depth - 1)
    return deepest


def loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of a text whose nesting was first checked: JsonTooDeep (a ValueError)
    instead of RecursionError; json.JSONDecodeError for a text that is not JSON."""
    depth = nesting_depth(text, max_depth)
    if depth > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth}")
    return json.loads(text)


# --- the observer: LLM figures through callbacks --------------------------------------------------
class LlmObserver(Protocol):
    """Told of each LLM request and retry (``worker.metrics.LlmFigures`` adds them to Redis). Its
    calls happen in the caller's thread; an exception from one is logged and ignored."""

    def request(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        """A chat request the server answered (any status): its time and reported tokens."""

    def retry(self, kind: str, delay_s: float) -> None:
        """A failed attempt of ``kind`` about to be retried after ``delay_s``."""

    def watch_breaker(self, breaker: CircuitBreaker) -> None:
        """The breaker whose state to report (called once, when the transport is built)."""


class NoObserver:
    """Counts nothing (tests, tools)."""

    def request(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        return None

    def retry(self, kind: str, delay_s: float) -> None:
        return None

    def watch_breaker(self, breaker: CircuitBreaker) -> None:
        return None


# --- credentials --------------------------------------------------------------------------------
class BearerKey(httpx.Auth):
    """``Authorization: Bearer <key>`` on every request; the key appears nowhere else (not in its
    repr, and ``redact`` removes it from any text a server sends back)."""

    def __init__(self, key: SecretStr | str) -> None:
        self._key = key if isinstance(key, SecretStr) else SecretStr(key)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self._key.get_secret_value()
        if key:
            request.headers["Authorization"] = f"Bearer {key}"
        yield request

    def redact(self, text: str) -> str:
        key = self._key.get_secret_value()
        return text.replace(key, "**********") if len(key) >= 4 else text

    def __repr__(self) -> str:
        return "BearerKey(**********)"


# --- one total deadline, enforced on every socket operation -------------------------------------
class Deadline(threading.local):
    """The deadline (``time.monotonic``) of the call running in this thread, or None."""

    at: float | None = None

    def left(self, timeout: float | None, timed_out: type[Exception]) -> float | None:
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise timed_out("the request's total deadline passed")
        return left if timeout is None else min(timeout, left)

    @contextmanager
    def until(self, at: float) -> Iterator[None]:
        saved, self.at = self.at, at
        try:
            yield
        finally:
            self.at = saved


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: Deadline) -> None:
        self._inner, self._deadline = httpcore.SyncBackend(), deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_unix_socket(path, left, socket_options), self._deadline
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _httpx_error(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """httpcore's exception as httpx's class of the same name (they mirror each other)."""
    cls = getattr(httpx, type(exc).__name__, None)
    if not (isinstance(cls, type) and issubclass(cls, httpx.TransportError)):
        cls = httpx.TransportError
    return cls(str(exc) or type(exc).__name__, request=request)


_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream, self._request = stream, request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except _CORE_ERRORS as exc:
            raise _httpx_error(exc, self._request) from None

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()


class DeadlineTransport(httpx.BaseTransport):
    """httpx's transport over an httpcore pool whose every connect, TLS handshake, write and read
    gets at most the time left until ``deadline`` (this thread's call)."""

    def __init__(self, deadline: Deadline, max_connections: int = 100) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_DeadlineBackend(deadline),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            resp = self._pool.handle_request(core)
        except _CORE_ERRORS as exc:
            raise _httpx_error(exc, request) from None
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream, request),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._pool.close()


# --- errors -------------------------------------------------------------------------------------
class Throttled(EngineError):
    """429 (``rate_limited``) or 503 (``overloaded``): back-pressure, with the server's
    ``Retry-After`` in seconds if it sent one."""

    def __init__(self, kind: str, detail: str, retry_after_s: float | None) -> None:
        super().__init__(kind, detail)
        self.retry_after_s = retry_after_s


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in its seconds form (``120``; a decimal is accepted); None for the date
    form, a negative or a missing value (the backoff applies then)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange's status, headers and body (its size bounded); ``broken`` when the
    status line came but the body did not (closed mid-body, the deadline, too large)."""

    status: int
    headers: httpx.Headers
    body: bytes
    seconds: float
    broken: EngineError | None = None


@dataclass(frozen=True)
class Probe:
    """What ``/models`` answered: ``models`` when it is an OpenAI-compatible list, else why not
    (``status`` is the HTTP status, 0 when nothing answered)."""

    status: int
    models: tuple[str, ...] = ()
    why: str = ""

    @property
    def refused_credentials(self) -> bool:
        return self.status in (401, 403)


# --- the transport ------------------------------------------------------------------------------
@dataclass
class OpenAICompat:
    """An OpenAI-compatible endpoint: ``models()`` and ``call(body, parse)``, with the deadline,
    retries, breaker, error kinds and observer described in the module docstring. Thread-safe:
    the threads of a process share one client (its pool) and one breaker."""

    base_url: str
    auth: BearerKey = field(default_factory=lambda: BearerKey(""), repr=False)
    timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.2
    retry_after_max_s: float = 10.0
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(3, 30.0))
    observer: LlmObserver = field(default_factory=NoObserver)
    sleep: Callable[[float], None] = time.sleep
    # None: the deadline transport. Another is for a test double at the edge (httpx.MockTransport),
    # which then answers without the deadline's guard.
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.deadline = Deadline()
        self.http = httpx.Client(
            base_url=self.base_url.rstrip("/") + "/",
            auth=self.auth,
            transport=self.transport or DeadlineTransport(self.deadline),
            headers={"Accept-Encoding": "identity"},  # the body's size is what is bounded
            trust_env=False,  # no proxy from the environment: it would bypass the deadline
            follow_redirects=False,
        )
        self._tell(self.observer.watch_breaker, self.breaker)

    @property
    def where(self) -> str:
        """The endpoint as logs and errors show it (credentials redacted)."""
        return redact_url(self.base_url)

    # --- the wire ---------------------------------------------------------------------------
    def exchange(self, method: str, path: str, body: dict[str, Any] | None = None) -> Exchange:
        """One request within this thread's deadline (or ``timeout_s`` when no call set one).
        Raises EngineError (timeout, connection) when no status line came; once one came, a
        failure is returned in ``Exchange.broken`` (the server did answer: it counts)."""
        at = self.deadline.at if self.deadline.at is not None else time.monotonic() + self.timeout_s
        started = time.perf_counter()
        resp: httpx.Response | None = None
        data = bytearray()
        try:
            with (
                self.deadline.until(at),
                self.http.stream(
                    method,
                    path,
                    json=body,
                    timeout=httpx.Timeout(max(0.001, at - time.monotonic())),
                ) as resp,
            ):
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > MAX_BODY_BYTES:
                        raise EngineError(
                            "invalid_output",
                            f"{self.where}/{path}: answer larger than {MAX_BODY_BYTES} bytes",
                        )
        except EngineError as exc:
            broken = exc
        except httpx.TimeoutException:
            broken = EngineError(
                "timeout",
                f"{self.where}/{path}: no complete answer within {self.timeout_s:g} s "
                "(connect, send and read together)",
            )
        except httpx.RemoteProtocolError as exc:
            broken = EngineError(
                "connection", f"{self.where}/{path}: the server broke off the answer: {exc}"
            )
        except httpx.HTTPError as exc:
            broken = EngineError("connection", f"{self.where}/{path}: {type(exc).__name__}: {exc}")
        else:
            return Exchange(
                resp.status_code, resp.headers, bytes(data), time.perf_counter() - started
            )
        if resp is None:
            raise broken
        return Exchange(
            resp.status_code, resp.headers, bytes(data), time.perf_counter() - started, broken
        )

    def _status_error(self, path: str, got: Exchange) -> EngineError:
        """The EngineError for a non-200 answer: its kind from the status, its detail from the
        server's own message (bounded, the key redacted)."""
        text = got.body[:4096].decode("utf-8", "replace")
        message = text[:200]
        try:
            payload = loads_bounded(text)
            error = payload.get("error", payload) if isinstance(payload, dict) else payload
            found = (
                (error.get("message") or error.get("detail")) if isinstance(error, dict) else None
            )
            message = str(found if found is not None else error)[:200]
        except (ValueError, AttributeError, TypeError):
            pass
        detail = self.auth.redact(f"HTTP {got.status} from {self.where}/{path}: {message}")
        status = got.status
        if status in (429, 503):
            retry_after = retry_after_seconds(got.headers.get("retry-after"))
            if retry_after is not None:
                detail += f" (Retry-After {retry_after:g} s)"
            kind = "rate_limited" if status == 429 else "overloaded"
            return Throttled(kind, detail, retry_after)
        if status in (401, 403):
            return EngineError("unauthorized", detail + " (check SGR_LLM_API_KEY)")
        if status >= 500:
            return EngineError("server_error", detail)
        return EngineError("rejected", detail)

    def probe(self, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
        """``/models`` asked once, with the credentials, within ``timeout_s``; never raises."""
        at = time.monotonic() + min(timeout_s, self.timeout_s)
        if self.deadline.at is not None:  # inside a call: never past its deadline
            at = min(at, self.deadline.at)
        with self.deadline.until(at):
            try:
                got = self.exchange("GET", "models")
            except EngineError as exc:
                return Probe(0, why=exc.detail)
        if got.broken is not None:
            return Probe(0, why=got.broken.detail)
        if got.status != 200:
            return Probe(got.status, why=self._status_error("models", got).detail)
        try:
            data = loads_bounded(got.body.decode("utf-8", "replace")).get("data")
            models = tuple(m["id"] for m in data)
        except (ValueError, AttributeError, TypeError, KeyError):
            return Probe(200, why=f"{self.where}/models is not an OpenAI-compatible model list")
        if not models or not all(isinstance(m, str) and m for m in models):
            return Probe(200, why=f"{self.where}/models lists no model")
        return Probe(200, models)

    def models(self) -> tuple[str, ...]:
        """The models ``/models`` lists, or EngineError (connection, unauthorized, no_model...)."""
        probe = self.probe(self.timeout_s)
        if probe.models:
            return probe.models
        if probe.status == 0:
            raise EngineError("connection", probe.why)
        if probe.status != 200:
            raise EngineError(
                "unauthorized" if probe.refused_credentials else "rejected", probe.why
            )
        kind = "no_model" if probe.why.endswith("lists no model") else "invalid_output"
        raise EngineError(kind, probe.why)

    def complete(self, body: dict[str, Any]) -> str:
        """One chat completion's text; each failure an EngineError; the observer told of every
        request the server answered (a status line came), whatever came after it."""
        got = self.exchange("POST", "chat/completions", body)
        prompt = completion = 0
        try:
            if got.broken is not None:
                raise got.broken
            if got.status != 200:
                raise self._status_error("chat/completions", got)
            try:
                payload = loads_bounded(got.body.decode("utf-8", "replace"))
            except JsonTooDeep as exc:
                raise EngineError("invalid_json", f"the chat completion is {exc}") from None
            except ValueError as exc:
                raise EngineError(
                    "invalid_output", f"not a chat completion (not JSON): {str(exc)[:120]}"
                ) from None
            try:
                usage = payload.get("usage") or {}
                prompt = int(usage.get("prompt_tokens") or 0)
                completion = int(usage.get("completion_tokens") or 0)
            except (AttributeError, TypeError, ValueError):
                pass
            try:
                choice = payload["choices"][0]
                text = choice["message"]["content"] or ""
                finish = choice.get("finish_reason")
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                raise EngineError("invalid_output", f"not a chat completion: {exc!r}") from None
            if not isinstance(text, str):
                raise EngineError("invalid_output", f"content is not text: {type(text).__name__}")
        finally:
            self._tell(self.observer.request, got.seconds, prompt, completion)
        if finish == "length":
            limit = body.get("max_tokens", body.get("max_completion_tokens"))
            raise EngineError("length", f"stopped at max_tokens={limit}: {text[-60:]!r}")
        return text

    # --- the one retry loop -----------------------------------------------------------------
    def call(
        self, body: Callable[[int], dict[str, Any]], parse: Callable[[str], T]
    ) -> tuple[T, int, str]:
        """``body(attempt)`` sent and its answer ``parse``d (which raises AnswerInvalid), retried
        by tenacity within the one deadline; returns the value, the attempts and the raw text."""
        if not self.breaker.allow():
            raise EngineError("circuit_open", f"{self.where} failed repeatedly; cooling down", 0)
        at = time.monotonic() + self.timeout_s
        attempts = 0

        def once() -> tuple[T, str]:
            nonlocal attempts
            attempts += 1
            text = self.complete(body(attempts))
            if nesting_depth(text) > MAX_JSON_DEPTH:
                raise EngineError("invalid_json", f"the answer nests deeper than {MAX_JSON_DEPTH}")
            try:
                return parse(text), text
            except AnswerInvalid as exc:
                raise EngineError("invalid_output", str(exc)) from None
            except RecursionError:
                raise EngineError("invalid_json", "the answer nests too deep to parse") from None

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, EngineError) and exc.kind in RETRYABLE
            ),
            wait=self._wait,
            stop=lambda state: (
                state.attempt_number > self.retries or time.monotonic() + state.upcoming_sleep >= at
            ),
            sleep=self.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            with self.deadline.until(at):
                value, text = retrying(once)
        except EngineError as exc:
            exc.attempts = attempts
            if exc.kind in BACK_PRESSURE:
                self.breaker.release()
            else:
                self.breaker.failure()
            raise
        except BaseException:  # a bug or the job's own timeout: a half-open trial still ends
            self.breaker.failure()
            raise
        self.breaker.success()
        return value, attempts, text

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, Throttled) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.retry_after_max_s)
        return self.backoff_s * 2 ** (state.attempt_number - 1) * (0.5 + random.random())

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        kind = exc.kind if isinstance(exc, EngineError) else type(exc).__name__
        delay = state.upcoming_sleep
        log.warning("llm_retry", kind=kind, attempt=state.attempt_number, delay_s=round(delay, 3))
        self._tell(self.observer.retry, kind, delay)

    def _tell(self, callback: Callable[..., None], *args: Any) -> None:
        """Call an observer's method; what it raises is logged, never the caller's problem."""
        try:
            callback(*args)
        except Exception as exc:
            log.warning("llm_observer_failed", error=f"{type(exc).__name__}: {str(exc)[:120]}")

    def close(self) -> None:
        self.http.close()
