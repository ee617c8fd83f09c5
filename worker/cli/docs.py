"""``sgr docs``: documents made from the code. ``sgr docs config`` prints (or writes, or checks)
docs/configuration.md from the settings' field descriptions (``worker/settingsdoc.py``);
``sgr docs schemas`` writes (or checks) docs/schemas/event.schema.json from the event contract
(``worker.api.eventschema.event_schema``, which the OpenAPI document uses too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.app import app, fail

docs_app = typer.Typer(help="Documents made from the code.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@docs_app.command("config")
def config(
    output: Annotated[
        Path | None, typer.Option(help="Write here (docs/configuration.md) instead of stdout.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when --output differs from the settings.")
    ] = False,
) -> None:
    """The configuration reference (every SGR_ variable: type, bounds, default, meaning), made
    from worker/settings.py; the environment is not read."""
    from worker.settingsdoc import render, undocumented

    missing = undocumented()
    if missing:
        fail("settings without a description= in worker/settings.py: " + ", ".join(missing))
    text = render()
    if check:
        if output is None:
            fail("--check needs --output (the file to compare)")
        if not output.is_file() or output.read_text(encoding="utf-8") != text:
            fail(f"{output} is out of date: run `uv run sgr docs config --output {output}`")
        return
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")


EVENT_SCHEMA = "event.schema.json"


def event_schema_text() -> str:
    """docs/schemas/event.schema.json as ``sgr docs schemas`` writes it."""
    from worker.api.eventschema import event_schema  # the one generator (the OpenAPI's too)

    return json.dumps(event_schema(), indent=2) + "\n"


@docs_app.command("schemas")
def schemas(
    output: Annotated[
        Path, typer.Option(help="The folder of the JSON Schemas (docs/schemas).")
    ] = Path("docs/schemas"),
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the event schema there differs.")
    ] = False,
) -> None:
    """The event contract as a JSON Schema (event.schema.json), made from the pydantic model
    (worker/domain/events.py). The stream entries' schemas in the same folder are written by
    hand and tested against the published entries."""
    text = event_schema_text()
    target = output / EVENT_SCHEMA
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            fail(f"{target} is out of date: run `uv run sgr docs schemas --output {output}`")
        return
    output.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
