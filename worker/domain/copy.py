"""Approved copy: the sentences a shop signed, tagged, and the choice of those a cart allows.

A catalogue (``worker/engines/copy_catalogue.json`` by default; the shop's own file with
``SGR_COPY_CATALOGUE``) holds entries: an id, the sentence, its ``tone``, the ``segments`` it may be
sent to and the ``occasions`` it needs. ``allowed`` picks the entries one cart may get: a sentence
about scarcity only where the inventory is low, one about coming back only to a customer with past
orders, one for loyal customers only to loyal ones. In catalogue mode (``SGR_MESSAGE_MODE``) the
model's message is an enum of exactly those sentences, enforced while it is generated; the rules
engine chooses among the same ones (``pick``).

Slots: ``{percent}``, ``{code}``, ``{expires}`` and ``{currency}`` are filled after the answer, and
only with values the system holds (``fill``); an entry whose slot the system cannot fill for a
cart (``{item}``: the contract carries SKUs, not product names) is not allowed for it. Pure: the
file is read by ``worker/engines/catalogue.py``.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TONES = ("friendly", "reassuring", "urgent")
SEGMENTS = ("any", "new_customer", "high_churn", "mid_churn", "low_churn", "loyal")
# What a cart must show for an entry: ``any``; ``abandoned`` (every abandoned cart);
# ``low_stock`` (the inventory says so); ``returning`` (the customer has past orders).
OCCASIONS = ("any", "abandoned", "low_stock", "returning")
# Slots the system fills after the answer, from values it holds; ``item`` is named so a catalogue
# may use it, but no cart has it filled today (the contract has no product names).
SYSTEM_SLOTS = ("percent", "code", "expires", "currency")
KNOWN_SLOTS = (*SYSTEM_SLOTS, "item")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TEXT_MAX = 160


class CatalogueError(ValueError):
    """A catalogue that cannot be used; the message names the entry and the field."""


@dataclass(frozen=True)
class CopyEntry:
    """One approved sentence and what it may be sent for."""

    id: str
    text: str
    tone: str
    segments: tuple[str, ...]
    occasions: tuple[str, ...]

    @property
    def slots(self) -> tuple[str, ...]:
        return slots_of(self.text)


@dataclass(frozen=True)
class CartFacts:
    """What ``allowed`` looks at: the rules' segment (``high_churn+loyal``...), the inventory,
    whether the customer has past orders, the occasion, and the slots the system can fill."""

    segment: str
    inventory: str
    orders: int
    occasion: str = "abandoned"
    fillable: tuple[str, ...] = SYSTEM_SLOTS


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[CopyEntry, ...]
    source: str = "<memory>"

    def by_text(self, text: str) -> CopyEntry | None:
        return next((e for e in self.entries if e.text == text), None)

    def by_id(self, entry_id: str) -> CopyEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


def slots_of(text: str) -> tuple[str, ...]:
    """The slot names in ``text`` (``{percent}`` -> ``percent``), in order."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


def without_slots(text: str) -> str:
    """The text with its slots removed (what the message checks read of a template)."""
    return re.sub(r"\{[a-z_]*\}", "", text)


def _tags(raw: Any, name: str, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    values = (raw,) if isinstance(raw, str) else raw
    if not isinstance(values, list | tuple) or not values:
        raise CatalogueError(f"{where}: {name} must be a non-empty list of {', '.join(allowed)}")
    out = []
    for value in values:
        if value not in allowed:
            raise CatalogueError(f"{where}: {name} {value!r} is not one of {', '.join(allowed)}")
        out.append(value)
    return tuple(out)


def parse_catalogue(data: Any, source: str = "<memory>") -> Catalogue:
    """A catalogue from its JSON form (``{"entries": [{"id", "text", "tone", "segments",
    "occasions"}, ...]}``); CatalogueError names the entry and the field that is wrong."""
    entries_raw = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries_raw, list) or not entries_raw:
        raise CatalogueError(f"{source}: needs a non-empty list 'entries'")
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    entries = []
    for n, raw in enumerate(entries_raw):
        where = f"{source}: entry {n}"
        if not isinstance(raw, dict):
            raise CatalogueError(f"{where}: must be an object")
        extra = set(raw) - {"id", "text", "tone", "segments", "occasions"}
        if extra:
            raise CatalogueError(f"{where}: unknown field {sorted(extra)[0]!r}")
        entry_id = raw.get("id")
        if not isinstance(entry_id, str) or not ID_PATTERN.match(entry_id):
            raise CatalogueError(f"{where}: id must match {ID_PATTERN.pattern} (got {entry_id!r})")
        where = f"{source}: entry {entry_id!r}"
        text = raw.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > TEXT_MAX:
            raise CatalogueError(f"{where}: text must be 1 to {TEXT_MAX} characters")
        if text != text.strip() or "\n" in text:
            raise CatalogueError(f"{where}: text must be one line without surrounding spaces")
        try:
            slots = slots_of(text)
        except ValueError as exc:
            raise CatalogueError(f"{where}: text has a broken slot: {exc}") from None
        unknown = [s for s in slots if s not in KNOWN_SLOTS]
        if unknown:
            raise CatalogueError(
                f"{where}: slot {{{unknown[0]}}} is not one the system fills "
                f"({', '.join('{' + s + '}' for s in KNOWN_SLOTS)})"
            )
        tone = raw.get("tone")
        if tone not in TONES:
            raise CatalogueError(f"{where}: tone {tone!r} is not one of {', '.join(TONES)}")
        segments = _tags(raw.get("segments", ["any"]), "segments", SEGMENTS, where)
        occasions = _tags(raw.get("occasions", ["any"]), "occasions", OCCASIONS, where)
        if entry_id in seen_ids:
            raise CatalogueError(f"{where}: id used twice")
        if text in seen_texts:
            raise CatalogueError(f"{where}: the same text as an earlier entry")
        seen_ids.add(entry_id)
        seen_texts.add(text)
        entries.append(CopyEntry(entry_id, text, tone, segments, occasions))
    return Catalogue(tuple(entries), source)


def _segment_matches(entry: CopyEntry, segment: str) -> bool:
    base, _, flag = segment.partition("+")
    wanted = set(entry.segments)
    if "loyal" in wanted and flag != "loyal":
        return False  # a sentence for loyal customers goes to loyal customers only
    return bool(wanted & {"any", base, "loyal" if flag == "loyal" else ""})


def _occasion_matches(entry: CopyEntry, facts: CartFacts) -> bool:
    for occasion in entry.occasions:
        if occasion == "low_stock" and facts.inventory != "low_stock":
            return False
        if occasion == "returning" and facts.orders <= 0:
            return False
        if occasion == "abandoned" and facts.occasion != occasion:
            return False
    return True


def allowed(catalogue: Catalogue, facts: CartFacts) -> tuple[CopyEntry, ...]:
    """The entries this cart may get, in the catalogue's order: the segment matches (loyal-only
    entries for loyal customers), every occasion the entry needs holds, and every slot it has is
    one the system can fill."""
    return tuple(
        e
        for e in catalogue.entries
        if _segment_matches(e, facts.segment)
        and _occasion_matches(e, facts)
        and all(s in facts.fillable for s in e.slots)
    )


def preferred_tone(facts: CartFacts) -> str:
    """The tone the rules engine speaks in: urgent where stock is low, reassuring to a customer
    who may leave, friendly otherwise."""
    if facts.inventory == "low_stock":
        return "urgent"
    if facts.segment.startswith("high_churn"):
        return "reassuring"
    return "friendly"


def pick(entries: Iterable[CopyEntry], tone: str, key: str) -> CopyEntry | None:
    """The rules engine's choice: among ``entries`` of ``tone`` (all of them if none has it), one
    chosen by a stable hash of ``key`` (the event id), so a re-run sends the same sentence."""
    pool = list(entries)
    if not pool:
        return None
    toned = [e for e in pool if e.tone == tone] or pool
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return toned[int.from_bytes(digest, "big") % len(toned)]


def fill(text: str, values: Mapping[str, str]) -> str:
    """The template with its slots filled from ``values`` (the system's own); a slot without a
    value is an error (``allowed`` keeps such entries out), never left as braces."""
    missing = [s for s in slots_of(text) if s not in values]
    if missing:
        raise CatalogueError(f"slot {{{missing[0]}}} has no value the system holds")
    return text.format_map(dict(values))


def choice_problems(message: str, entries: Iterable[CopyEntry]) -> list[str]:
    """Why a catalogue-mode message may not be used: it is not one of the entries allowed for the
    cart (the schema's enum makes this impossible on a grammar-enforcing server; checked again on
    every engine's answer)."""
    if any(e.text == message for e in entries):
        return []
    return [f"message_not_in_catalogue: {message[:40]!r}"]
