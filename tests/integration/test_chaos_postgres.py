"""The chaos run beyond one host: workers in two data folders (each its own cold store and history
snapshot) that share nothing but one redis-server and one real PostgreSQL, while a worker is
SIGKILLed mid-job, redis-server restarts and crashes, and the stand-in LLM times out and fails.
The reconciliation reads PostgreSQL: nothing lost, nothing doubled, every offer on the stream."""

from __future__ import annotations

import pytest

from testbench.chaos import FAULT_KINDS, ChaosConfig, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_chaos_two_hosts_on_postgres_lose_and_double_nothing(postgres_url: str) -> None:
    report = run_chaos(
        ChaosConfig(
            events=120, workers=4, seed=29, max_time_s=90, hot_store_url=postgres_url, folders=2
        )
    )
    assert report["hot_store"].startswith("postgresql://") and report["folders"] == 2
    assert report["lost"] == 0, report
    assert report["duplicate_offers"] == 0, report
    assert report["published_mismatch"] == 0, report
    assert report["outcome_mismatch"] == 0, report
    assert report["state_mismatch"] == 0 and report["over_cap"] == 0, report
    assert report["two_live_codes"] == 0 and report["offers_after_redemption"] == 0, report
    assert all(report["faults"][kind] >= 1 for kind in FAULT_KINDS), report["faults"]
    assert report["accepted"] == report["offers"] + report["no_offer"] + report["dead_letter"]
    assert report["offers"] == report["stream_entries"] > 0
    assert report["delayed"]["decided_early"] == 0 and report["delayed"]["undecided"] == 0, report
    assert report["delayed"]["offer_after_order"] == 0, report
    assert report["ok"], report
