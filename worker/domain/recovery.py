"""Cart recovery on the shop's clock, as pure functions: when an abandonment's decision is due
(``SGR_OFFER_DELAY_MINUTES`` after the abandonment, moved out of the customer's quiet hours), and
what the session's newest state says at due time (an order or a newer event since: no offer).

No I/O, no clock: the handler (``worker/handlers/cart.py``) passes the times and the session it
read; the due set and its claims live in ``worker/schedule.py`` and the hot store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.domain.model import SessionState

_HOURS = re.compile(r"^(?P<a>\d{2}):(?P<b>\d{2})-(?P<c>\d{2}):(?P<d>\d{2})$")
_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``), or ValueError naming it."""
    if not isinstance(name, str) or len(name) > 64 or not _ZONE.match(name):
        raise ValueError(f"not an IANA time zone name (got {str(name)[:64]!r})")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"not an IANA time zone name (got {name!r})") from None


@dataclass(frozen=True)
class QuietHours:
    """Local hours in which no offer is sent (``21:00-09:00``: from 21:00 to 09:00 the next
    morning; ``12:00-14:00``: within one day). ``start`` is inside, ``end`` is not."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """``HH:MM-HH:MM`` (empty: none), or ValueError naming the text."""
        text = text.strip()
        if not text:
            return None
        match = _HOURS.match(text)
        if match is None:
            raise ValueError(f"quiet hours must read HH:MM-HH:MM, e.g. 21:00-09:00 (got {text!r})")
        a, b, c, d = (int(match[k]) for k in "abcd")
        if a > 23 or c > 23 or b > 59 or d > 59:
            raise ValueError(f"quiet hours: no such time of day (got {text!r})")
        if (a, b) == (c, d):
            raise ValueError(f"quiet hours: start and end are the same time (got {text!r})")
        return cls(time(a, b), time(c, d))

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def quiet_end(moment: datetime, quiet: QuietHours, tz: ZoneInfo) -> datetime | None:
    """If ``moment`` falls in ``quiet`` hours in time zone ``tz``: when they end (aware, in
    ``tz``); else None."""
    local = moment.astimezone(tz)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return None
    day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        day += timedelta(days=1)  # a window over midnight, entered in the evening
    end = datetime.combine(day, quiet.end, tzinfo=tz)
    # a local time that does not exist (a DST gap) or is ambiguous: never before the moment
    return max(end, local)


@dataclass(frozen=True)
class RecoveryConfig:
    """The recovery's parameters, derived from the settings (``Settings.recovery_config``)."""

    delay: timedelta
    quiet: QuietHours | None
    timezone: str  # the customer's zone when the event names none

    @property
    def active(self) -> bool:
        """Whether any decision can wait (a delay, or quiet hours)."""
        return self.delay > timedelta(0) or self.quiet is not None


OFF = RecoveryConfig(timedelta(0), None, "UTC")


def due_at(occurred_at: datetime, config: RecoveryConfig, tz_name: str | None) -> tuple[datetime, str | None]:  # fmt: skip
    """When an abandonment at ``occurred_at`` is decided, and why later than ``occurred_at +
    delay`` (``quiet_hours``) or None: a moment in the quiet hours of the customer's zone
    (``tz_name``, else the configured one) moves to their end, never earlier."""
    due = occurred_at + config.delay
    if config.quiet is None:
        return due, None
    end = quiet_end(due, config.quiet, zone(tz_name or config.timezone))
    return (end, "quiet_hours") if end is not None else (due, None)


def at_due(event_id: str, session: SessionState | None) -> str | None:
    """At due time, why the session's newest state refuses the decision: ``order_completed``
    (an order since), ``superseded`` (a newer event of the session since: another abandonment,
    a cart change, a customer's message), or None (still the abandonment it was)."""
    if session is None:
        return None
    if session.status == "ordered":
        return "order_completed"
    if session.last_event_id != event_id:
        return "superseded"
    return None
