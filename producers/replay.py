"""Replay: push a JSON-lines file of recorded events in file order, at the recorded pace scaled by
a speed factor (``speed=2`` twice as fast, ``speed=0`` as fast as possible).

The pace comes from the events' own ``occurred_at``: an event is sent ``(occurred_at - first
occurred_at) / speed`` seconds after the start. Order is the file's order, never re-sorted, so a
file with out-of-order events replays them out of order, as they were recorded. Used by
``sgr loadgen --replay FILE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from worker.deadletter import PoisonItem, parse_item

log = structlog.get_logger("sgr.replay")


def parse_line(line: bytes) -> Any:
    """One line of a JSON-lines file, or ``PoisonItem`` with one clear reason (not UTF-8, not
    JSON, nested deeper than any event)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoisonItem(f"not UTF-8 ({exc.reason} at column {exc.start + 1})") from None
    try:
        return parse_item(text)
    except PoisonItem as exc:
        cause = exc.__context__
        if isinstance(cause, json.JSONDecodeError):
            raise PoisonItem(f"not JSON ({cause.msg} at column {cause.colno})") from None
        raise


def read_lines(data: bytes) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """The events of JSON lines as ``(line number, payload)``, and ``(line number, error)`` for
    each line that is not UTF-8, not JSON or nested too deeply: a bad line never hides the others.
    Blank lines are skipped."""
    events: list[tuple[int, Any]] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            events.append((number, parse_line(line.rstrip(b"\r"))))
        except PoisonItem as exc:
            bad.append((number, str(exc)))
    return events, bad


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a JSON-lines file in file order; blank lines skipped, bad lines logged."""
    events, bad = read_lines(path.read_bytes())
    for number, error in bad:
        log.warning("replay_line_rejected", line=number, error=error)
    for _number, payload in events:
        yield payload


def _moment(event: dict[str, Any]) -> datetime | None:
    text = event.get("occurred_at") if isinstance(event, dict) else None
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timeline(
    events: Iterable[dict[str, Any]],
    *,
    speed: float = 1.0,
    retime: bool = False,
    fresh_ids: bool = False,
    now: datetime | None = None,
) -> Iterator[tuple[float, dict[str, Any]]]:
    """``(offset_s, event)`` pairs for ``Sender``: recorded gaps divided by ``speed``.

    An event without a readable ``occurred_at`` goes at the offset of the one before it. Offsets
    never go backwards (an out-of-order event is sent at once, in its place). ``retime`` moves
    ``occurred_at`` so the first event happened now (gaps kept); ``fresh_ids`` gives each event a
    new ``event_id`` (suffix ``-r<n>``) so a file can be pushed again without being deduplicated.
    """
    if speed < 0:
        raise ValueError("speed must be >= 0 (0 = as fast as possible)")
    first: datetime | None = None
    shift = None
    offset = 0.0
    for index, event in enumerate(events):
        moment = _moment(event)
        if moment is not None:
            if first is None:
                first = moment
                shift = (now or datetime.now(UTC)) - first
            if speed > 0:
                offset = max(offset, (moment - first).total_seconds() / speed)
        if retime or fresh_ids:
            event = dict(event)
            if retime and moment is not None and shift is not None:
                event["occurred_at"] = (moment + shift).isoformat()
            if fresh_ids and isinstance(event.get("event_id"), str):
                event["event_id"] = f"{event['event_id']}-r{index}"
        yield offset, event
