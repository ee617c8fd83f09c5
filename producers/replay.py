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

log = structlog.get_logger("sgr.replay")


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a JSON-lines file in file order; blank lines skipped, bad lines logged."""
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                log.warning("replay_line_not_json", line=number, error=exc.msg)


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
