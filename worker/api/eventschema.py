"""The event's JSON Schema (``docs/schemas/event.schema.json``, and the OpenAPI document's
``CartEvent``), made from the contract's model (``worker/domain/events.py``) plus what pydantic's
schema cannot say of its validators: which types need a cart or a message, that ids carry no
surrounding whitespace, that numbers are JSON numbers and times carry a zone. The contract stays
the judge: a payload the schema accepts may still be refused (an ``occurred_at`` too old for
``SGR_EVENT_MAX_AGE_HOURS``, a cart value its items disagree with); tests/unit/test_event_schema.py
runs corpora of valid and invalid events through both."""

from __future__ import annotations

import copy
import unicodedata
from typing import Any

from worker.domain.events import CartEvent, EventType

SCHEMA_ID = "https://github.com/sgr-discount-manager/schemas/event.schema.json"
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def _refused_class() -> str:
    """A regex class of the BMP characters the contract refuses in ids (control, format,
    surrogate, private use, line and paragraph separators), as \\uXXXX ranges that ECMA-262 and
    Python read alike. Unassigned code points and characters beyond the BMP are judged by the
    contract only (they depend on its Unicode version)."""
    ranges: list[tuple[int, int]] = []
    for point in range(0x10000):
        if unicodedata.category(chr(point)) in REFUSED_CATEGORIES:
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


# ids as sent: no whitespace at either end, none of the refused characters
IDENT_PATTERN = rf"^(?!\s)[^{_refused_class()}]*(?<!\s)$"
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})$"


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _visit(node: Any) -> None:
    if isinstance(node, dict):
        # bounds pydantic kept in its own words (a Field beside a BeforeValidator), Decimal's
        # "number or text" (the contract takes JSON numbers only)
        bounds = {_BOUNDS[k]: node.pop(k) for k in list(node) if k in _BOUNDS}
        node.pop("decimal_places", None)
        if bounds:
            options = node.pop("anyOf", None)
            if options is not None and {o.get("type") for o in options} == {"number", "string"}:
                node["type"] = "number"
                options = None
            if options is not None:
                node["anyOf"] = options
                options[0].update(bounds)
            else:
                node.update(bounds)
        for option in node.get("anyOf", []):
            bounds = {_BOUNDS[k]: option.pop(k) for k in list(option) if k in _BOUNDS}
            option.update(bounds)
        if node.get("type") == "string" and node.get("minLength") == 1 and "pattern" not in node:
            node["pattern"] = IDENT_PATTERN
        if node.get("format") == "date-time":
            node["pattern"] = TIME_PATTERN
        for value in node.values():
            _visit(value)
    elif isinstance(node, list):
        for value in node:
            _visit(value)


def event_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one cart event (``ref_template``: where its parts are,
    ``#/components/schemas/{model}`` in the OpenAPI document)."""
    schema = copy.deepcopy(
        CartEvent.model_json_schema(mode="validation", ref_template=ref_template)
    )
    _visit(schema)
    cart = schema["$defs"]["Cart"]  # value and margin, or line items to derive them from
    cart["anyOf"] = [
        {"required": ["value", "margin"]},
        {"required": ["items"], "properties": {"items": {"minItems": 1}}},
    ]
    needs_cart = [
        t.value for t in EventType if t.value not in ("order_completed", "customer_message")
    ]
    schema["allOf"] = [
        {
            "if": {"properties": {"type": {"enum": needs_cart}}, "required": ["type"]},
            "then": {"required": ["cart"], "properties": {"cart": {"type": "object"}}},
        },
        {
            "if": {"properties": {"type": {"const": "customer_message"}}, "required": ["type"]},
            "then": {
                "required": ["message"],
                "properties": {"message": {"type": "string", "minLength": 1}},
            },
        },
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m worker.api.eventschema PATH``: write the schema (``make docs``)."""
    import json
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    Path(args[0]).write_text(json.dumps(event_schema(), indent=2) + "\n")


if __name__ == "__main__":
    main()
