"""structlog set-up: JSON lines on stderr for workers, readable lines for people.

``configure`` sets up the project's own (structlog) loggers. ``route_stdlib`` makes a worker
process's every other line go the same way: RQ's own loggers (``rq.worker``, ``rq.job``, ...: its
start-up, per-job and failure lines) at the worker's level (``SGR_LOG_LEVEL=WARNING`` quiets the
per-job ones), any library's warnings, Python's warnings, and uncaught exceptions of threads, each
one JSON object a line with ``SGR_LOG_FORMAT=json``, a traceback as the field ``exception`` (or
``traceback``, for RQ's job failures) instead of lines of its own.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

from worker.redact import redact_text

# The stdlib loggers of RQ a worker process routes (children propagate to ``rq``).
RQ_LOGGERS = ("rq", "rq.worker", "rq.job", "rq.scheduler")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # RQ colours queue names and job descriptions


def _redact(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """No secret in a log line: every text value (and an exception) with its credentials
    redacted (``worker/redact.py``)."""
    for key, value in event.items():
        if isinstance(value, BaseException):
            event[key] = redact_text(f"{type(value).__name__}: {value}")
        elif isinstance(value, str) and ("=" in value or "://" in value or ":" in value):
            event[key] = redact_text(value)
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _plain(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No terminal colour codes inside a JSON field (RQ's lines carry them)."""
    text = event.get("event")
    if isinstance(text, str) and "\x1b" in text:
        event["event"] = _ANSI.sub("", text)
    return event


def _renderer(json_logs: bool) -> structlog.typing.Processor:
    return structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()


def _shared(json_logs: bool, context: bool = True) -> list[structlog.typing.Processor]:
    """What every line goes through before it is rendered: context (the job's ids; not for RQ's
    lines, some written between jobs, which name their job in their text), level, time, the
    traceback turned into one field (JSON), secrets out."""
    chain: list[structlog.typing.Processor] = [
        *([structlog.contextvars.merge_contextvars] if context else []),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:  # the console renderer prints tracebacks itself
        chain.append(structlog.processors.format_exc_info)
    return [*chain, _redact]


def configure(json_logs: bool = True, level: str = "INFO") -> None:
    structlog.configure(
        processors=[*_shared(json_logs), _renderer(json_logs)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        # Not cached: a process that configures twice (a CLI command run in-process, a test) must
        # see the second set-up in every module's logger, not the one each logger first met.
        cache_logger_on_first_use=False,
    )


class _RoutedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``route_stdlib`` installs (told apart from others', e.g. pytest's)."""


_routed_json = False


def routed_as_json() -> bool:
    """Whether this process's stdlib lines are JSON objects (``route_stdlib(json_logs=True)``)."""
    return _routed_json


def route_stdlib(json_logs: bool = True, level: str = "INFO") -> logging.Handler:
    """Send RQ's loggers (at ``level``), the root logger (warnings and above) and Python's
    warnings through the same renderer as the project's own lines, on stderr; RQ's own handlers
    (its coloured stdout and stderr lines) are removed. Uncaught exceptions in threads become one
    line too. Idempotent: a second call replaces the first one's handler."""
    global _routed_json
    handler = _RoutedHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _renderer(json_logs),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                _plain,
                *_shared(json_logs, context=False),
            ],
        )
    )
    numeric = logging.getLevelName(level)
    for name in RQ_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(numeric)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _RoutedHandler)] + [handler]
    root.setLevel(max(logging.WARNING, numeric))
    logging.captureWarnings(True)
    if json_logs:
        threading.excepthook = _thread_excepthook
    _routed_json = json_logs
    return handler


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    structlog.get_logger("sgr.thread").error(
        "uncaught_exception",
        thread=args.thread.name if args.thread else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
