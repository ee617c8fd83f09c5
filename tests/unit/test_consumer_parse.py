"""The example consumer's parser (producers/consumer.py) on any entry a stream could hold: a typed
entry or one ``EntryError`` naming a field, never another exception (hypothesis); and every entry
the system publishes reads back with its money as ``Decimal``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from producers.consumer import REQUIRED, EntryError, parse_entry
from tests.conftest import NOW
from worker.domain.model import Offer, OutcomeNotice

NAMES = st.sampled_from(
    ["type", "offer_id", "reply_id", "outcome_id", "event_id", "user_id", "discount_pct",
     "cap_pct", "turn", "outcome", "expires_at", "at", "model", "supersedes", "x"]
)  # fmt: skip
TYPES = st.sampled_from([*REQUIRED, "later", ""])
VALUES = st.one_of(
    st.binary(max_size=12),
    st.text(max_size=12).map(str.encode),
    st.sampled_from(
        [b"", b"7.25", b"NaN", b"-1", b"1e999", b"2026-12-01T10:00:00+00:00", b"3", "²".encode()]
    ),
)


# A valid entry of each type, which the examples change a few fields of.
BASE = {
    "offer": {"offer_id": "o1", "discount_pct": "7.25", "expires_at": "2026-12-01T10:00:00+00:00"},
    "reply": {"reply_id": "reply-m1", "event_id": "m1", "turn": "1", "discount_pct": ""},
    "void": {"offer_id": "o1", "user_id": "u1", "at": "2026-12-01T10:00:00+00:00"},
    "outcome": {"outcome_id": "out-1", "event_id": "e1", "outcome": "offer", "offer_id": "o1"},
}


@settings(max_examples=600, deadline=None)
@example("reply", "turn", "²".encode(), {})  # a digit to str.isdigit, not to int()
@given(
    kind=TYPES,
    name=NAMES,
    value=VALUES,
    more=st.dictionaries(NAMES.map(str.encode), VALUES, max_size=3),
)
def test_any_entry_reads_or_names_its_field(
    kind: str, name: str, value: bytes, more: dict[bytes, bytes]
) -> None:
    base = {k.encode(): v.encode() for k, v in BASE.get(kind, {}).items()}
    fields = {**base, b"type": kind.encode(), **more, name.encode(): value}
    try:
        entry = parse_entry(fields)
    except EntryError as exc:
        assert str(exc).split(":", 1)[0], exc  # names a field
        return
    for name in ("discount_pct", "cap_pct"):
        assert entry.get(name) is None or isinstance(entry[name], Decimal)
        assert entry.get(name) is None or entry[name].is_finite()


def test_what_the_system_publishes_reads_back_typed() -> None:
    offer = Offer(
        offer_id="8e288a94f211dca5", event_id="e1", session_id="s1", user_id="u1",
        currency="EUR", cart_value=120.0, margin=0.4, segment="new", cap_pct=10.0,
        discount_pct=7.25, code="SGR-AB23-CD45-EF67", expires_at=NOW + timedelta(hours=48),
        engine="policy", model="rules", reasoning={"supersedes": "0123456789abcdef"},
        message="Hello.", guardrail=None, created_at=NOW,
    )  # fmt: skip
    read = parse_entry(offer.stream_entry())
    assert read["discount_pct"] == Decimal("7.25") and read["cap_pct"] == Decimal("10.0")
    assert read["supersedes"] == "0123456789abcdef" and read["model"] == "rules"
    told = parse_entry(OutcomeNotice("e2", "no_offer", NOW, reason="not_a_trigger").stream_entry())
    assert told["outcome"] == "no_offer" and told["offer_id"] is None
    assert told["outcome_id"].startswith("out-")
