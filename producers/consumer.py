"""A shop's consumer of the offers stream and the outcome stream: an example to copy (the README's
"Consuming offers and outcomes").

Several consumers share the work through one consumer group per stream (the same group name on
both): each entry goes to one of them (XREADGROUP), which acknowledges it (XACK) once it is
handled. What it handles, by the entry's ``type``:

- ``offer`` (no ``type``: an offer of an older release): an offer to send, once per ``offer_id``;
  ``supersedes`` names the offer a counter-offer replaces;
- ``reply``: a negotiation reply without a new price, once per ``reply_id`` (its ``offer_id`` is
  empty);
- ``void``: an offer whose code no longer holds, once per ``offer_id``;
- ``outcome``: what became of an event (``offer``, ``no_offer``, ``dead_letter``, ``rejected``),
  once per ``outcome_id``;
- any other type: ignored (a later release may add types) and acknowledged.

Delivery is at least once; the effect is once: the effect and the "handled" marker are one atomic
write (here one Lua script on Redis, standing for the shop's own database, where it would be one
transaction with a unique key), so a consumer killed between the effect and the XACK finds the
entry handled when it is delivered again. Numbers are ``Decimal`` (money), an empty number is None,
an entry that fails validation names the field and the value. An entry that fails is tried
again once idle ``--claim-idle`` s; one that fails ``--max-deliveries`` deliveries (XPENDING's delivery count: a consumer that crashes on it counts
too) is set aside on a dead list with its error and acknowledged, so it never blocks the group.
An entry taken by a consumer that died stays pending; another consumer claims it after
``--claim-idle`` s (XAUTOCLAIM).

    python -m producers.consumer --group shop --consumer c1 [--claim-idle 30] [--max-deliveries 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

import redis

Entry = dict[str, Any]
# Decimal numbers by entry type (money: never a binary float); empty text is None.
NUMBER_FIELDS = ("discount_pct", "cap_pct")
# What each type must carry (non-empty), and the field that makes it once.
REQUIRED = {
    "offer": ("offer_id", "discount_pct"),
    "reply": ("reply_id", "event_id"),
    "void": ("offer_id", "user_id"),
    "outcome": ("outcome_id", "event_id", "outcome"),
}
ONCE_BY = {"offer": "offer_id", "reply": "reply_id", "void": "offer_id", "outcome": "outcome_id"}
OUTCOMES = ("offer", "no_offer", "dead_letter", "rejected")
# The effect and its marker in one atomic write. KEYS: the handled hash, the type's records hash,
# the ledger list. ARGV: the marker (type:id), the entry's stream id, the record's id, the record
# (JSON). Returns 1 if the effect happened now, 0 if the entry was handled before.
APPLY_ONCE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[4])
return 1
"""


class EntryError(ValueError):
    """An entry that does not read as its type says: the text names the field and the value."""


def _text(name: str, raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EntryError(f"{name}: not UTF-8 text (got {raw[:40]!r})") from None


def _decimal(name: str, text: str) -> Decimal | None:
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise EntryError(f"{name}: not a decimal number (got {text[:40]!r})") from None
    if not value.is_finite():
        raise EntryError(f"{name}: not a finite number (got {text[:40]!r})")
    return value


def parse_entry(fields: dict[bytes, bytes] | dict[str, str]) -> Entry:
    """A stream entry as typed values: text fields; the ``NUMBER_FIELDS`` as ``Decimal`` (None
    when empty; absent stays absent: ``cap_pct`` only with ``SGR_PUBLISH_CAP=1``); ``turn`` an
    int; empty ``model``, ``supersedes``, ``offer_id``, ``code`` and ``reason`` None; ``type``
    "offer" when absent. Raises ``EntryError`` naming the field and the value."""
    entry: Entry = {}
    for key, value in fields.items():
        name = _text("<field name>", key)
        entry[name] = _text(name, value)
    kind = entry.setdefault("type", "offer")
    for name in NUMBER_FIELDS:
        if name in entry:
            entry[name] = _decimal(name, entry[name])
    for name in ("model", "supersedes", "offer_id", "code", "reason", "error_kind", "error"):
        if entry.get(name) == "":
            entry[name] = None
    if kind not in REQUIRED:
        return entry
    for name in REQUIRED[kind]:
        if entry.get(name) in (None, ""):
            raise EntryError(f"{name}: missing or empty in an entry of type {kind!r}")
    if kind == "offer" and entry["discount_pct"] <= 0:
        raise EntryError(f"discount_pct: must be above 0 (got {str(entry['discount_pct'])!r})")
    if kind == "reply" and entry.get("turn"):
        if not (entry["turn"].isascii() and entry["turn"].isdigit()):
            raise EntryError(f"turn: not a whole number (got {entry['turn'][:40]!r})")
        entry["turn"] = int(entry["turn"])
    if kind == "outcome" and entry["outcome"] not in OUTCOMES:
        raise EntryError(f"outcome: not one of {', '.join(OUTCOMES)} (got {entry['outcome']!r})")
    if kind == "outcome" and entry["outcome"] == "offer" and not entry.get("offer_id"):
        raise EntryError("offer_id: missing or empty in an 'offer' outcome")
    for name in ("expires_at", "created_at", "at"):
        if entry.get(name):
            try:
                datetime.fromisoformat(entry[name])
            except ValueError:
                raise EntryError(
                    f"{name}: not an ISO-8601 time (got {entry[name][:40]!r})"
                ) from None
    return entry


@dataclass(frozen=True)
class ConsumerKeys:
    """The example's own keys (the shop's database stands behind them): the handled markers, a
    hash of records per type, the ledger of effects in the order they happened, the dead list."""

    base: str

    @property
    def handled(self) -> str:
        return f"{self.base}:handled"

    def records(self, kind: str) -> str:
        return f"{self.base}:{kind}"

    @property
    def ledger(self) -> str:
        return f"{self.base}:ledger"

    @property
    def dead(self) -> str:
        return f"{self.base}:dead"


class Consumer:
    def __init__(
        self,
        client: redis.Redis,
        group: str,
        name: str,
        *,
        streams: Sequence[str] = ("sgr:offers", "sgr:outcomes"),
        base: str | None = None,
        claim_idle_s: float = 30.0,
        max_deliveries: int = 5,
        on_entry: Callable[[Entry], None] | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.client, self.group, self.name = client, group, name
        self.streams = tuple(streams)
        self.keys = ConsumerKeys(base or f"sgr:consumer:{group}")
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.max_deliveries = max_deliveries
        self.on_entry = on_entry  # called before the effect (a shop's own check; tests)
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self._apply = client.register_script(APPLY_ONCE)
        self._recovered = False  # its own pending entries read again (the first round)
        self.handled = 0  # effects applied by this consumer
        self.read = 0  # entries read (handled, duplicates, ignored, set aside, failed)

    def ensure_group(self, start: str = "0") -> None:
        """Create the group on each stream (from its start by default) unless it exists."""
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id=start, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def apply(self, entry: Entry, entry_id: str) -> bool:
        """The entry's effect and its handled marker in one atomic write; False if it was
        handled before (a redelivery). Unknown types have no effect."""
        kind = entry["type"]
        key = entry[ONCE_BY[kind]]
        record = json.dumps(entry, default=str, sort_keys=True)
        keys = [self.keys.handled, self.keys.records(kind), self.keys.ledger]
        return bool(self._apply(keys=keys, args=[f"{kind}:{key}", entry_id, key, record]))

    def _deliveries(self, stream: str, ids: list[str]) -> dict[str, int]:
        """How many times each of these entries (pending for this consumer) was delivered."""
        if not ids:
            return {}
        rows: Any = self.client.xpending_range(
            stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 100,
            consumername=self.name,
        )  # fmt: skip
        return {_text("id", r["message_id"]): int(r["times_delivered"]) for r in rows}

    def set_aside(self, stream: str, entry_id: str, fields: Any, error: str) -> None:
        """Put an entry on the dead list with its error, and acknowledge it (in one MULTI)."""

        def text(value: bytes | str) -> str:  # whatever it holds: the letter must be written
            return value if isinstance(value, str) else value.decode("utf-8", "replace")

        raw = {text(k): text(v) for k, v in fields.items()}
        letter = {"stream": stream, "id": entry_id, "error": error, "fields": raw}
        with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self.keys.dead, json.dumps(letter))
            pipe.xack(stream, self.group, entry_id)
            pipe.execute()
        self.err.write(f"consumer: entry {entry_id} of {stream} set aside: {error}\n")
        self.err.flush()

    def _process(self, stream: str, entries: list[Any], redelivered: bool) -> int:
        """Handle a batch of entries read from ``stream``; how many were read."""
        ids = [_text("id", e[0]) for e in entries if e[1] is not None]
        counts = self._deliveries(stream, ids) if redelivered else {}
        for raw_id, fields in entries:
            entry_id = _text("id", raw_id)
            self.read += 1
            if fields is None:  # trimmed from the stream meanwhile: nothing to handle
                self.client.xack(stream, self.group, entry_id)
                continue
            delivered = counts.get(entry_id, 1)
            if delivered > self.max_deliveries:  # it crashed consumers: never tried again
                error = f"delivered {delivered - 1} times without being handled"
                self.set_aside(stream, entry_id, fields, error)
                continue
            try:
                entry = parse_entry(fields)
                if entry["type"] not in ONCE_BY:  # a type this consumer does not know
                    self.client.xack(stream, self.group, entry_id)
                    continue
                if self.on_entry is not None:
                    self.on_entry(entry)
                applied = self.apply(entry, entry_id)
            except redis.ConnectionError:
                raise
            except Exception as exc:  # not acknowledged: delivered again, up to the limit
                error = (
                    f"{type(exc).__name__}: {exc}" if not isinstance(exc, EntryError) else str(exc)
                )
                if delivered >= self.max_deliveries:
                    self.set_aside(stream, entry_id, fields, error)
                else:
                    self.err.write(
                        f"consumer: entry {entry_id} of {stream} failed "
                        f"(delivery {delivered} of {self.max_deliveries}): {error}\n"
                    )
                    self.err.flush()
                continue
            self.client.xack(stream, self.group, entry_id)
            if applied:
                self.handled += 1
                self.out.write(json.dumps(entry, default=str) + "\n")
                self.out.flush()
        return len(entries)

    def claim(self) -> int:
        """Handle the entries other consumers took and left idle for longer than claim_idle_s."""
        done = 0
        for stream in self.streams:
            cursor: Any = "0-0"
            while True:
                reply: Any = self.client.xautoclaim(
                    stream, self.group, self.name, self.claim_idle_ms, cursor, count=100
                )
                cursor, entries = reply[0], reply[1]
                done += self._process(stream, entries, redelivered=True)
                if cursor in (b"0-0", "0-0"):
                    break
        return done

    def recover(self, count: int = 100) -> int:
        """This consumer's own pending entries, read again once at start (it died or was stopped
        before their XACK); how many were read. Later failures wait for ``claim``: an entry that
        failed is tried again once it has been idle ``claim_idle_s``, not at once."""
        done = 0
        for stream in self.streams:
            cursor = "0"
            while True:
                own: Any = self.client.xreadgroup(
                    self.group, self.name, {stream: cursor}, count=count
                )
                entries = own[0][1] if own else []
                if not entries:
                    break
                done += self._process(stream, entries, redelivered=True)
                cursor = _text("id", entries[-1][0])
        return done

    def own_pending(self) -> int:
        """How many entries this consumer has taken and not acknowledged."""
        total = 0
        for stream in self.streams:
            rows: Any = self.client.xpending_range(
                stream, self.group, min="-", max="+", count=1, consumername=self.name
            )
            total += len(rows)
        return total

    def step(self, block_ms: int = 1000, count: int = 100) -> int:
        """One round: this consumer's own pending entries (the first round: after a restart),
        claims (a dead consumer's entries, and this one's that failed, once idle), then new
        ones; how many entries were read."""
        done = 0
        if not self._recovered:
            done += self.recover(count)
            self._recovered = True
        done += self.claim()
        new: Any = self.client.xreadgroup(
            self.group, self.name, dict.fromkeys(self.streams, ">"), count=count, block=block_ms
        )
        for stream, entries in new or []:
            done += self._process(_text("stream", stream), entries, redelivered=False)
        return done

    def run(self, limit: int = 0, until_idle: bool = False, block_ms: int = 1000) -> int:
        """Consume until ``limit`` effects (0: no limit), or with ``until_idle`` until a round
        reads nothing while this consumer holds no pending entry; returns the effects applied."""
        self.ensure_group()
        while limit == 0 or self.handled < limit:
            if self.step(block_ms=block_ms) == 0 and until_idle and self.own_pending() == 0:
                break
        return self.handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producers.consumer", description=__doc__)
    parser.add_argument("--group", required=True, help="consumer group (one per application)")
    parser.add_argument("--consumer", required=True, help="this consumer's name in the group")
    parser.add_argument("--stream", default=None, help="the offers stream (SGR_OFFERS_STREAM)")
    parser.add_argument(
        "--outcomes-stream", default=None, help="the outcome stream (<SGR_KEY_PREFIX>:outcomes)"
    )
    parser.add_argument("--no-outcomes", action="store_true", help="read the offers stream only")
    parser.add_argument("--url", default=None, help="Redis URL (SGR_REDIS_URL)")
    parser.add_argument("--claim-idle", type=float, default=30.0, help="claim after s idle")
    parser.add_argument(
        "--max-deliveries", type=int, default=5, help="set an entry aside after N deliveries"
    )
    parser.add_argument("--count", type=int, default=0, help="stop after N effects (0: never)")
    parser.add_argument(
        "--until-idle", action="store_true", help="stop after a round that reads nothing"
    )
    args = parser.parse_args(argv)
    if args.max_deliveries < 1:
        parser.error(f"--max-deliveries: must be at least 1 (got {args.max_deliveries})")
    from worker.keys import Keys
    from worker.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"consumer: error: {exc}\n")
        return 1
    keys = Keys.from_settings(settings)
    streams = [args.stream or keys.offers_stream]
    if not args.no_outcomes:
        streams.append(args.outcomes_stream or keys.outcomes_stream)
    client = redis.Redis.from_url(args.url or settings.redis_url)
    consumer = Consumer(
        client,
        args.group,
        args.consumer,
        streams=streams,
        base=keys.consumer(args.group),
        claim_idle_s=args.claim_idle,
        max_deliveries=args.max_deliveries,
    )
    try:
        consumer.run(args.count, until_idle=args.until_idle)
    except KeyboardInterrupt:
        pass
    except redis.ConnectionError as exc:
        sys.stderr.write(f"consumer: error: cannot reach Redis: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
