"""worker/logs.py: with JSON logs every line is one JSON object, whoever writes it (the project's
structlog loggers, RQ's stdlib loggers, a library's warning, an exception in a thread), a
traceback is a field, secrets are redacted, and the level quiets RQ's INFO lines."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from worker.logs import RQ_LOGGERS, configure, route_stdlib


@pytest.fixture(autouse=True)
def saved_logging() -> Iterator[None]:
    """Put the stdlib loggers this test touches back as they were."""
    names = ("", *RQ_LOGGERS)
    saved = {
        n: (
            list(logging.getLogger(n).handlers),
            logging.getLogger(n).level,
            logging.getLogger(n).propagate,
        )
        for n in names
    }
    hook = threading.excepthook
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)
    threading.excepthook = hook
    logging.captureWarnings(False)


def lines(capsys: Any) -> list[dict[str, Any]]:
    captured = capsys.readouterr()
    assert captured.out == ""
    out = []
    for line in captured.err.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not one JSON object: {line!r}")
    return out


def test_rq_s_lines_and_tracebacks_are_one_json_object_each(capsys: Any) -> None:
    configure(json_logs=True, level="INFO")
    route_stdlib(json_logs=True, level="INFO")
    rq = logging.getLogger("rq.worker")
    rq.info("Worker w1: \x1b[32mcart-events\x1b[39;49;00m: Job OK (j1)")
    try:
        raise ValueError("boom at redis://:hunter2@cache:6379/0")
    except ValueError:
        rq.exception("Worker w1: job j1 failed")
        structlog.get_logger("sgr.jobs").error("event_failed", exc_info=True)
    logging.getLogger("httpx").warning("a library's warning\nover two lines")
    logging.getLogger("httpx").info("a library's INFO line: not shown")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    thread = threading.Thread(target=lambda: 1 / 0, name="reaper")
    thread.start()
    thread.join()
    found = lines(capsys)
    events = [o["event"] for o in found]
    assert events[0] == "Worker w1: cart-events: Job OK (j1)"  # colour codes gone
    rq_failed = found[1]
    assert rq_failed["logger"] == "rq.worker" and rq_failed["level"] == "error"
    assert "Traceback (most recent call last)" in rq_failed["exception"]
    assert "hunter2" not in json.dumps(found)  # redacted in the traceback too
    ours = found[2]
    assert ours["event"] == "event_failed" and "ValueError: boom" in ours["exception"]
    assert found[3]["event"] == "a library's warning\nover two lines"
    assert not any("not shown" in e for e in events)
    assert any("deprecated thing" in e for e in events)
    crashed = [o for o in found if o["event"] == "uncaught_exception"]
    assert crashed and crashed[0]["thread"] == "reaper"
    assert "ZeroDivisionError" in crashed[0]["exception"]


def test_the_level_quiets_rq_s_per_job_lines(capsys: Any) -> None:
    configure(json_logs=True, level="WARNING")
    route_stdlib(json_logs=True, level="WARNING")
    logging.getLogger("rq.worker").info("cart-events: Job OK (j1)")
    logging.getLogger("rq.worker").warning("Worker w1: stopping on request")
    assert [o["event"] for o in lines(capsys)] == ["Worker w1: stopping on request"]


def test_routing_twice_leaves_one_handler_and_keeps_others() -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first = route_stdlib()
    second = route_stdlib()
    root = logging.getLogger().handlers
    assert other in root and second in root and first not in root
    assert logging.getLogger("rq.worker").handlers == [second]
