"""The short chaos run of `make test`: ~150 events through real `rq worker` processes on their own
redis-server while a worker is SIGKILLed mid-job, redis-server restarts, the stand-in LLM times out
and fails, and duplicate, out-of-order and malformed events arrive. Nothing lost, nothing doubled."""

from __future__ import annotations

import pytest

from testbench.chaos import FAULT_KINDS, ChaosConfig, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_chaos_short_run_loses_and_doubles_nothing() -> None:
    report = run_chaos(ChaosConfig(events=150, workers=3, seed=23, max_time_s=80))
    assert report["lost"] == 0, report
    assert report["duplicate_offers"] == 0, report
    assert report["published_mismatch"] == 0, report
    assert report["outcome_mismatch"] == 0, report
    assert report["state_mismatch"] == 0 and report["over_cap"] == 0, report
    assert report["two_live_codes"] == 0 and report["offers_after_redemption"] == 0, report
    assert all(report["faults"][kind] >= 1 for kind in FAULT_KINDS), report["faults"]
    assert report["accepted"] == report["offers"] + report["no_offer"] + report["dead_letter"]
    assert report["dead_letter"] >= report["faults"]["malformed"]  # each malformed one, recorded
    assert report["recovery"]["requeued"] >= 1  # the killed worker's job was re-run
    assert report["offers"] == report["stream_entries"]
    assert report["delayed"]["decided_early"] == 0 and report["delayed"]["undecided"] == 0, report
    assert report["delayed"]["offer_after_order"] == 0, report
    assert report["ok"], report


def test_chaos_with_batch_jobs_loses_and_doubles_nothing() -> None:
    report = run_chaos(ChaosConfig(events=120, workers=2, seed=29, max_time_s=80, batch=10))
    assert report["lost"] == 0, report
    assert report["duplicate_offers"] == 0, report
    assert report["published_mismatch"] == 0, report
    assert report["outcome_mismatch"] == 0, report
    assert report["state_mismatch"] == 0 and report["over_cap"] == 0, report
    assert report["two_live_codes"] == 0 and report["offers_after_redemption"] == 0, report
    assert report["accepted"] == report["offers"] + report["no_offer"] + report["dead_letter"]
    assert report["offers"] == report["stream_entries"]
    assert report["delayed"]["decided_early"] == 0 and report["delayed"]["undecided"] == 0, report
    assert report["delayed"]["offer_after_order"] == 0, report
    assert report["ok"], report
