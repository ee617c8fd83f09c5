"""``sgr report lift``: does the discount pay? The holdout experiment's lift (docs/lift.md)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.app import DataDir, UserError, settings

lift_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--since: not an ISO-8601 time ({text[:40]!r})", 2) from None
    if moment.tzinfo is None:
        raise UserError(f"--since: give a zone, e.g. {text}Z ({text[:40]!r})", 2)
    return moment


@lift_app.command()
def lift(
    data_dir: DataDir = None,
    since: Annotated[
        str | None, typer.Option(help="Only carts decided since this ISO-8601 time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the lift per segment to FILE.png.")
    ] = None,
) -> None:
    """Per group the eligible carts, orders in the attribution window, conversion, revenue and
    discount cost; the lift with its 95 % interval, per segment; the sample-ratio check."""
    from worker.liftreport import lift_report, plot, table
    from worker.runtime import open_store

    moment = _since(since)
    s = settings(data_dir)
    hot = open_store(s)
    try:
        report = lift_report(hot, s.experiment(), moment)
    finally:
        hot.close()
    if plot_file is not None and report.get("experiment") is not None:
        plot(report, plot_file)
    print(json.dumps(report)) if as_json else print(table(report))
