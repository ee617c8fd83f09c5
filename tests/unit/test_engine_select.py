"""Which engine ``build_engine`` picks (worker/engines/select.py), against the STAND-IN LLM server
at the edge: ``auto`` asks ``/models`` with the configured key, and a 401/403 stops the start
with one line naming the status instead of silently picking the rules engine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog

from testbench.redisproc import free_port
from testbench.standin_llm import StandInLLM
from worker.engines.hosted import OpenAIEngine
from worker.engines.policy import PolicyEngine
from worker.engines.select import build_engine
from worker.engines.vllm import VllmEngine
from worker.settings import Settings, SettingsError

KEY = "sk-select-key-do-not-show-77"


def build(**options: object) -> object:
    settings = Settings(**options)  # type: ignore[arg-type]
    return build_engine(settings, settings.rule_config())


def test_auto_with_a_refused_key_refuses_to_start_naming_the_status() -> None:
    with (
        StandInLLM(api_key="another-key") as llm,
        structlog.testing.capture_logs() as logs,
        pytest.raises(SettingsError) as info,
    ):
        build(engine="auto", llm_url=llm.url, llm_api_key=KEY)
    message = str(info.value)
    assert "401" in message and "SGR_LLM_API_KEY" in message and "\n" not in message
    assert KEY not in message and KEY not in json.dumps(logs, default=str)
    assert not any(e.get("engine") == "policy" for e in logs)  # no silent rules engine


def test_auto_sends_the_key_and_takes_the_llm() -> None:
    with StandInLLM(api_key=KEY) as llm, structlog.testing.capture_logs() as logs:
        engine = build(engine="auto", llm_url=llm.url, llm_api_key=KEY)
    assert isinstance(engine, VllmEngine) and not isinstance(engine, OpenAIEngine)
    assert [e["engine"] for e in logs if e["event"] == "engine_selected"] == ["vllm"]


def test_auto_without_an_llm_takes_the_rules_engine_and_says_why() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with structlog.testing.capture_logs() as logs:
        engine = build(engine="auto", llm_url=url)
    assert isinstance(engine, PolicyEngine)
    (selected,) = [e for e in logs if e["event"] == "engine_selected"]
    assert selected["engine"] == "policy" and selected["log_level"] == "warning"
    assert "127.0.0.1" in selected["why"]


class HtmlPageDouble(BaseHTTPRequestHandler):
    """A TEST DOUBLE at the edge: a web server answering every path with 200 and a page."""

    def do_GET(self) -> None:
        data = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


def test_auto_against_a_server_that_is_not_openai_compatible_takes_the_rules_engine() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HtmlPageDouble)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        with structlog.testing.capture_logs() as logs:
            engine = build(engine="auto", llm_url=url)
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(engine, PolicyEngine)
    assert any("not an OpenAI-compatible model list" in e.get("why", "") for e in logs)


def test_the_hosted_engine_needs_a_model_and_a_key() -> None:
    with pytest.raises(SettingsError, match="SGR_LLM_MODEL and SGR_LLM_API_KEY"):
        build(engine="openai")
    with pytest.raises(SettingsError, match="SGR_LLM_API_KEY"):
        build(engine="openai", llm_model="gpt-4o-mini")
    engine = build(engine="openai", llm_model="gpt-4o-mini", llm_api_key=KEY)
    assert isinstance(engine, OpenAIEngine) and engine.name == "openai"
    assert KEY not in repr(engine)
