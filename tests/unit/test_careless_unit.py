"""Careless settings, hostile endpoints and broken stores, each met with one clear message that
names the variable or the path and never shows a secret."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from typer.testing import CliRunner

from stores.base import StoreUnavailable
from stores.sqlite import SqliteHotStore
from tests.conftest import NOW, event, make_deps
from worker import deadletter
from worker.cli import app
from worker.deadletter import DeadLetters
from worker.domain.events import parse_event
from worker.engines.base import EngineError
from worker.engines.vllm import VllmEngine, endpoint_answers
from worker.runner import process
from worker.settings import SettingsError, load_settings, redact_url


class HtmlPage(BaseHTTPRequestHandler):
    """A test double at the edge: a web server that answers every path with HTML and 200."""

    def do_GET(self) -> None:  # noqa: N802
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def html_url() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_an_html_page_is_not_an_llm(html_url: str, data_dir: Path) -> None:
    assert endpoint_answers(html_url) is False  # so `auto` keeps the rules engine
    engine = VllmEngine(base_url=html_url, retries=0)
    with pytest.raises(EngineError) as info:
        engine.discover_model()
    assert info.value.kind == "invalid_output"
    deps = make_deps(data_dir, engine=engine)  # forced onto it: every answer falls back
    outcome = process(parse_event(event()), deps)
    assert outcome.outcome == "offer" and outcome.engine == "policy"


def test_settings_errors_name_the_variable_and_hide_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SGR_ENGINE", "gpt-9")
    with pytest.raises(SettingsError, match="SGR_ENGINE") as info:
        load_settings()
    assert "'gpt-9'" in str(info.value)
    monkeypatch.delenv("SGR_ENGINE")
    monkeypatch.setenv("SGR_LLM_API_KEY", "sk-secret-value-1234")
    monkeypatch.setenv("SGR_LLM_TIMEOUT_S", "-1")
    monkeypatch.setenv("SGR_REDIS_URL", "redis://:pw-secret-777@host:6379/0")
    monkeypatch.setenv("SGR_MAX_ATTEMPTS", "zero")
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "SGR_LLM_TIMEOUT_S" in text and "SGR_MAX_ATTEMPTS" in text
    assert "sk-secret" not in text and "pw-secret" not in text


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("redis://:pw123@h:6379/0", "pw123"),
        ("rediss://user:pw123@h:6380/1", "pw123"),
        ("http://sgr:pw123@127.0.0.1:8000/v1", "pw123"),
        ("https://h/v1?api_key=pw123&x=1", "pw123"),
        ("postgresql://sgr:pw123@db:5432/sgr", "pw123"),
    ],
)
def test_urls_are_redacted(url: str, hidden: str) -> None:
    shown = redact_url(url)
    assert hidden not in shown and "***" in shown


def test_an_unopenable_store_names_its_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match=str(blocker)):
        SqliteHotStore(blocker / "data" / "hot.sqlite")


def test_an_unwritable_store_still_gets_the_dead_letter_to_redis(data_dir: Path) -> None:
    deps = make_deps(data_dir)
    deps.hot.conn.execute("PRAGMA query_only = ON")  # SQLite refuses every write from now on
    with pytest.raises(StoreUnavailable, match="hot.sqlite"):
        process(parse_event(event()), deps)
    client = fakeredis.FakeRedis()
    letters = DeadLetters(client, "sgr:dead-letters", "sgr:store-failures")
    assert deadletter.record(
        deps.hot, letters, event(event_id="x1"), "boom", job_id="j1", attempts=1, now=NOW
    )
    [letter] = letters.list()
    assert letter.event_id == "x1" and letter.store_failed and letter.payload["event_id"] == "x1"
    assert letters.store_failures() == 1


def test_codes_verify_and_redeem_trust_only_the_stored_offer(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = make_deps(data_dir)
    outcome = process(parse_event(event()), deps)
    offer = deps.hot.get_offer(outcome.offer_id or "")
    assert offer is not None
    runner = CliRunner()
    monkeypatch.setenv("SGR_DATA_DIR", str(data_dir))

    def sgr(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, " ".join(result.output.split())

    typed = offer.code.lower().replace("-", " ")
    code, out = sgr("codes", "verify", typed)
    assert code == 0 and f"{offer.discount_pct:g}% off" in out
    body = offer.code.removeprefix("SGR-").replace("-", "")
    other = "SGR-" + body[:-1] + ("A" if body[-1] != "A" else "B")
    assert sgr("codes", "verify", other)[0] == 2  # unknown
    malformed = sgr("codes", "redeem", "SGR-ZZZZZZZZZZZZZZZ", "--any-user")
    assert malformed[0] == 1  # malformed, no OverflowError
    assert sgr("codes", "redeem", offer.code)[0] == 1  # the customer (or --any-user) is needed
    assert sgr("codes", "redeem", offer.code, "--user", "someone-else")[0] == 6
    code, out = sgr("codes", "redeem", offer.code, "--user", offer.user_id)
    assert code == 0 and f"{offer.discount_pct:g}% off" in out
    code, out = sgr("codes", "redeem", offer.code, "--any-user")
    assert code == 3 and "already redeemed" in out
    code, out = sgr("codes", "verify", offer.code)
    assert code == 3  # verify no longer says "valid" for a redeemed code
