"""Milliseconds per stage of one event, kept with its outcome (``sgr report`` and the metrics
exporter read them from ``processed_events.timings``)."""

from __future__ import annotations

import time


class Stopwatch:
    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        """Add the time since the last lap to ``stage``."""
        now = time.perf_counter()
        self.ms[stage] = round(self.ms.get(stage, 0.0) + (now - self.last) * 1000, 3)
        self.last = now
