"""structlog set-up: JSON lines on stderr for workers, readable lines for people."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from worker.redact import redact_text


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


def configure(json_logs: bool = True, level: str = "INFO") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        # Not cached: a process that configures twice (a CLI command run in-process, a test) must
        # see the second set-up in every module's logger, not the one each logger first met.
        cache_logger_on_first_use=False,
    )
