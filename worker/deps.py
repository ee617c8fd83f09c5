"""What every handler sees: the process's collaborators (``Deps``, wired once in
``worker/runtime.py`` or by a test) and what RQ knows of the job carrying the events (``JobInfo``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from stores.base import HotStore
from stores.history import HistorySource
from worker.domain import rules
from worker.domain.codes import new_code
from worker.domain.experiment import NO_EXPERIMENT, Experiment
from worker.domain.recovery import OFF, RecoveryConfig
from worker.engines.base import Engine
from worker.outbox import Outbox


@dataclass(frozen=True)
class Deps:
    """A process's collaborators, wired once in ``worker/runtime.py`` (or by a test)."""

    hot: HotStore
    history: HistorySource
    engine: Engine
    fallback: Engine
    outbox: Outbox
    rules: rules.RuleConfig
    clock: Callable[[], datetime]
    offer_ttl: timedelta
    on_invalid_answer: str = "policy"
    new_code: Callable[[], str] = new_code
    experiment: Experiment = NO_EXPERIMENT  # the holdout experiment (docs/lift.md)
    attribution: timedelta = timedelta(hours=72)  # an order's window back to its abandonment
    recovery: RecoveryConfig = OFF  # the delay and quiet hours of abandonment decisions


@dataclass(frozen=True)
class JobInfo:
    """What RQ knows about the job carrying the event (absent when called directly)."""

    job_id: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    attempt: int = 1
    due: bool = False  # the job decides scheduled abandonments that are due (handle_due)
