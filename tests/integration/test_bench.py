"""`sgr bench --quick`, scaled down further: every phase runs end to end on its own redis-server
and returns every key. Figures are not asserted (shared, noisy machines): only their presence and
their consistency."""

from __future__ import annotations

import json

import pytest

from testbench.bench import main
from testbench.standin_llm import StandInLLM

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = (
    "rq_floor_per_s",
    "pipeline_rules_per_s",
    "rules_vs_floor",
    "llm_edge_efficiency",
    "vllm_vs_direct",
    "worker_rss_mb",
    "batch_vs_floor",
    "redis_commands_per_event",
    "llm_inflight_efficiency",
    "api_redeem_per_s",
    "api_redeem_p99_ms",
    "api_vs_floor",
    "exporter_scrape_s",
    "exporter_peak_mb",
)


def test_quick_bench_returns_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    # The "vLLM" here is the STAND-IN, to run the comparison path; the real tier is tests/vllm.
    with StandInLLM(latency_s=0.02) as llm, pytest.raises(SystemExit) as done:
        main(
            [
                "--quick",
                "--json",
                "--jobs",
                "80",
                "--fork-jobs",
                "10",
                "--llm-workers",
                "1,2",
                "--llm-seconds",
                "0.5",
                "--latency-ms",
                "50",
                "--vllm-url",
                llm.url,
                "--vllm-requests",
                "4",
                "--api-backends",
                "sqlite",
                "--api-redeems",
                "200",
                "--exporter-events",
                "20000",
            ]
        )
    assert done.value.code == 0
    result = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in result, key
    assert result["rq_floor_per_s"] > 0 and result["pipeline_rules_per_s"] > 0
    assert result["rules_vs_floor"] == pytest.approx(
        result["pipeline_rules_per_s"] / result["rq_floor_per_s"], rel=0.01
    )
    assert set(result["llm_edge_efficiency"]) == {"1", "2"}
    assert result["exporter_events"] == 20_000
    assert all(v["sources_up"] for v in result["exporter_by_store"].values() if "scrape_s" in v)
    assert 0 < result["exporter_scrape_s"] < 5
    assert all(0 < v <= 1.05 for v in result["llm_edge_efficiency"].values())
    # every event of the rules batches went the whole way (the batch phases share the window)
    assert result["rules_run"]["outcomes"].get("offer", 0) >= 80
    assert "dead_letter" not in result["rules_run"]["outcomes"]
    assert result["batch_vs_floor"] > 0 and 0 < result["redis_commands_per_event"] < 20
    assert 0 < result["llm_inflight_efficiency"] <= 1.05
    assert result["llm_runs"]["2"]["stages_ms_p50"]["llm"] >= 50
    assert (
        isinstance(result["vllm_vs_direct"], float) and result["vllm"]["vllm_direct_answered"] == 4
    )
    assert 10 < result["worker_rss_mb"] < 1000
    # the same rules batches with history read from DuckDB, beside the snapshot's
    assert result["rules_duckdb_run"]["outcomes"] == {"offer": 80}
    assert result["worker_rss_mb_by_phase"]["rules_duckdb"] > 0
    cpu = result["cpu_ms_per_job"]
    assert set(cpu) == {"floor", "rules", "essentials", "rules_duckdb", "batch"}
    assert result["essentials_per_s"] > 0 and "essentials_vs_floor" in result
    assert all(v["workers_ms"] > 0 and v["total_ms"] >= v["workers_ms"] for v in cpu.values())
    assert len(result["vllm"]["vllm_rounds"]["direct_per_s"]) >= 1
    assert result["machine"]["nproc"] >= 1
    api = result["api_by_backend"]["sqlite"]  # every redemption over HTTP succeeded
    assert api["api_redeems"] == 200 and api["api_not_ok"] == {}
    assert api["api_vs_floor_of_totals"] == pytest.approx(
        api["api_redeem_per_s"] / api["api_floor_per_s"], rel=0.01
    )
    assert result["api_vs_floor"] == api["api_vs_floor"] > 0  # the headline is SQLite's
    assert result["api_redeem_p99_ms"] > 0
