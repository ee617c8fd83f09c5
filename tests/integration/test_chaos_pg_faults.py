"""The chaos run with PostgreSQL faults (CI runs it): the hot store on a PostgreSQL server of the
run's own, every connection to it closed again and again mid-run (``pg_terminate_backend`` every
0.1 s for 2 s) and the server restarted, besides the usual faults (a worker SIGKILLed, Redis
restarted and crashed, the LLM stand-in timing out and failing). Nothing lost, nothing doubled,
and no worker stopped itself: each rode the store's outage out."""

from __future__ import annotations

import pytest

from testbench.chaos import FAULT_KINDS, PG_FAULT_KINDS, ChaosConfig, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_chaos_with_postgres_faults_loses_doubles_and_stops_nothing() -> None:
    report = run_chaos(
        ChaosConfig(events=100, workers=2, seed=31, max_time_s=60, pg_faults=True, races=10)
    )
    assert report["hot_store"].startswith("postgresql://")
    assert report["lost"] == 0, report
    assert report["duplicate_offers"] == 0, report
    assert report["published_mismatch"] == 0, report
    assert report["state_mismatch"] == 0 and report["over_cap"] == 0, report
    assert report["two_live_codes"] == 0 and report["offers_after_redemption"] == 0, report
    assert all(report["faults"][kind] >= 1 for kind in FAULT_KINDS + PG_FAULT_KINDS), report
    assert report["recovery"]["pg_connections_closed"] >= 1, report["recovery"]
    assert report["workers_stopped_themselves"] == 0, report["recovery"]
    assert report["workers_alive_at_end"] == 2
    assert report["accepted"] == report["offers"] + report["no_offer"] + report["dead_letter"]
    assert report["offers"] == report["stream_entries"] > 0
    assert report["ok"]
