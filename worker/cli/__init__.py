"""The ``sgr`` command, split by audience: ``ops`` (running and operating a fleet), ``data``
(customer data and events), ``bench`` (the demo and the test bench), ``docs`` (documents made
from the code). Each command imports what it needs when it runs, so ``sgr --help`` loads little
more than typer."""

from __future__ import annotations

from worker.cli import (  # noqa: F401  (they register their commands)
    api,
    bench,
    data,
    docs,
    evaluate,
    fleet,
    negotiate,
    ops,
    retention,
)
from worker.cli.app import app, main

__all__ = ["app", "main"]
