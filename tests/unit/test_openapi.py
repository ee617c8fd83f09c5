"""The committed OpenAPI document (docs/openapi.json) is the one the code makes (the served one is
compared over HTTP in tests/integration/test_api_fuzz.py): every error a problem, the event's
schema in it, each route behind its scope."""

from __future__ import annotations

import json
from pathlib import Path

from worker.api.server import openapi_text

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_document_is_the_generated_one() -> None:
    assert (ROOT / "docs/openapi.json").read_text() == openapi_text(), "run `make docs`"


def test_every_route_documents_its_errors_as_problems_and_needs_a_key() -> None:
    doc = json.loads(openapi_text())
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "CartEvent" in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            for status, answer in answers.items():
                if status.startswith(("4", "5")):
                    assert list(answer["content"]) == ["application/problem+json"], (path, status)
            if path.startswith("/v1/"):
                assert operation["security"] == [{"apiKey": []}], (method, path)
                assert {"401", "403", "422", "429"} <= set(answers), (method, path)
