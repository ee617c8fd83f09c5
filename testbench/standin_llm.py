"""A STAND-IN for an OpenAI-compatible LLM server, at the edge of the system, for tests, the
benchmark and the chaos run. It is not vLLM: it writes a schema-valid answer from the request's
JSON schema (honouring enums, bounds and lengths), after a fixed latency, and can inject faults.
The real-server tier (tests/vllm) is what proves constrained decoding.

Faults (``fault``): none, timeout (sleeps past the client's timeout), error500, refuse_conn (closes
the socket), invalid_json, truncated (finish_reason=length), over_cap (ignores the bounds, as a
server that dropped the schema would), percent_mismatch (message names another percent);
and the wire's faults: trickle (the headers, then the body one byte every ``trickle_s``),
close_mid_body (the headers and half the body, then the socket closed), deep_json (an answer
nested 100 000 deep), rate_limited (429) and overloaded (503), both with ``Retry-After:
retry_after`` when it is set. ``fault_times`` = N: only the first N chat requests get the fault,
the others are answered. ``api_key`` set: a request without ``Authorization: Bearer <api_key>``
gets 401, ``/models`` too. Change ``fault``, ``latency_s`` and ``fault_times`` at run time with
``POST /_standin/config {"fault": ..., "latency_s": ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "none",
    "timeout",
    "error500",
    "refuse_conn",
    "invalid_json",
    "truncated",
    "over_cap",
    "percent_mismatch",
    "trickle",
    "close_mid_body",
    "deep_json",
    "rate_limited",
    "overloaded",
)
DEEP = 100_000
WORDS = "the customer left a cart with good value and may come back with a small nudge today"
SENTENCE = "Your cart is still waiting, come back whenever you are ready."


def fill(schema: dict[str, Any], path: str = "") -> Any:
    """A value that satisfies ``schema`` (the subset the worker sends)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:  # a union (the negotiation router): its first branch
        return fill(schema["anyOf"][0], path)
    kind = schema.get("type")
    if kind == "object":
        return {k: fill(v, f"{path}/{k}") for k, v in schema["properties"].items()}
    if kind in ("number", "integer"):
        high = schema.get("maximum", 10)
        low = schema.get("minimum", 0)
        value = max(low, min(high, high if "discount" in path else (low + high) / 2))
        return int(value) if kind == "integer" else value
    if kind == "string" and "pattern" in schema:  # the one pattern the worker sends: a sentence
        if not re.search(schema["pattern"], SENTENCE):
            raise ValueError(f"stand-in: cannot fill the pattern {schema['pattern']!r}")
        return SENTENCE
    if kind == "string":
        text = f"{path.rsplit('/', 1)[-1].replace('_', ' ')}: {WORDS}"
        return text[: schema.get("maxLength", len(text))]
    if kind == "boolean":
        return True
    return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many requests start together (64 in flight); the default is 5
    daemon_threads = True


class StandInLLM:
    """Run with ``with StandInLLM(latency_s=0.1) as llm: ... llm.url``."""

    def __init__(
        self,
        latency_s: float = 0.0,
        fault: str = "none",
        port: int = 0,
        model: str = "stand-in",
        *,
        fault_times: int | None = None,
        retry_after: str | None = None,
        trickle_s: float = 1.0,
        api_key: str | None = None,
    ) -> None:
        self.latency_s = latency_s
        self.fault = fault
        self.model = model
        self.fault_times = fault_times
        self.retry_after = retry_after
        self.trickle_s = trickle_s
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # time.monotonic() of each chat request
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> StandInLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        with self.lock:
            self.requests.append(body)
            self.arrived.append(time.monotonic())
            fault, latency = self.fault, self.latency_s
            if self.fault_times is not None and len(self.requests) > self.fault_times:
                fault = "none"
        if fault == "timeout":
            time.sleep(max(latency, 3600.0))
        time.sleep(latency)
        if fault == "error500":
            return 500, {"error": {"message": "stand-in: injected server error", "code": 500}}
        if fault == "refuse_conn":
            return 0, None
        if fault in ("rate_limited", "overloaded"):
            status = 429 if fault == "rate_limited" else 503
            return status, {"error": {"message": f"stand-in: injected {fault}", "code": status}}
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema")
        if schema is None:
            schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        value = fill(schema)
        pricing = value.get("pricing") if isinstance(value, dict) else None
        if fault == "over_cap" and pricing:
            pricing["discount_percent"] = pricing["max_allowed_discount"] + 25
        if pricing and fault == "percent_mismatch":  # a number the system did not set
            pricing["customer_message"] = "Take 95% off with code FREE95!"
        content = json.dumps(value, separators=(",", ":"))
        finish = "stop"
        if fault == "invalid_json":
            content = content[: len(content) // 2] + "}}"
        if fault == "truncated":
            content, finish = content[: len(content) // 3], "length"
        if fault == "deep_json":
            content = "[" * DEEP + "]" * DEEP
        return 200, {
            "id": f"standin-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
            # client's delayed ACK (~40 ms), which would count as LLM latency.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, payload: dict[str, Any], fault: str = "none") -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status in (429, 503) and outer.retry_after is not None:
                    self.send_header("Retry-After", outer.retry_after)
                self.end_headers()
                if fault == "close_mid_body":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "trickle":
                    self.close_connection = True
                    with contextlib.suppress(OSError):  # the client gives up at its deadline
                        self.wfile.flush()
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(outer.trickle_s)
                    return
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if outer.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {outer.api_key}":
                    return True
                self._send(401, {"error": {"message": "stand-in: invalid API key", "code": 401}})
                return False

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [
                                {"id": outer.model, "object": "model", "owned_by": "stand-in"}
                            ],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/_standin/config":
                    with outer.lock:
                        outer.fault = body.get("fault", outer.fault)
                        outer.latency_s = float(body.get("latency_s", outer.latency_s))
                        outer.fault_times = body.get("fault_times", outer.fault_times)
                    self._send(200, {"fault": outer.fault, "latency_s": outer.latency_s})
                    return
                if not self._authorized():
                    return
                with outer.lock:
                    fault = outer.fault
                    if outer.fault_times is not None and len(outer.requests) >= outer.fault_times:
                        fault = "none"
                status, payload = outer.answer(body)
                if payload is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                self._send(status, payload, fault)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--fault", choices=FAULTS, default="none")
    args = parser.parse_args()
    with StandInLLM(args.latency_ms / 1000, args.fault, args.port) as llm:
        print(f"stand-in LLM (not vLLM) listening on {llm.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            llm.thread.join()


if __name__ == "__main__":
    main()
