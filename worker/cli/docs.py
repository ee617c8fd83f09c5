"""``sgr docs``: documents made from the code. ``sgr docs config`` prints (or writes, or checks)
docs/configuration.md from the settings' field descriptions (``worker/settingsdoc.py``)."""

from __future__ import annotations

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
