"""``sgr bench``: the pipeline beside its limits, measured in one run on one machine and one Redis.

1. the floor: stock ``rq worker`` processes (same class, same number as the pipeline) draining a
   no-op job that takes the same payload (``noop``);
2. the pipeline with the rules engine only, on the same fleet, alternating with (1) batch by batch
   so that both see the same machine load: events/s and ``rules_vs_floor``; beside it, in the same
   rounds, a reference job doing only what any pipeline must (``essentials``: parse, read, one
   commit, publish) and the pipeline reading history from DuckDB instead of the snapshot;
3. the pipeline against an LLM STAND-IN at the edge (``StandInLLM``, fixed latency) with W
   workers: offers/s and ``llm_edge_efficiency`` = rate / (W / latency);
4. with a real vLLM server (``--vllm-url``, or SGR_LLM_URL when it answers): the pipeline beside
   the same requests sent straight to vLLM by a plain HTTP client at the same concurrency:
   ``vllm_vs_direct``;
5. ``worker_rss_mb``: resident memory (VmRSS) of the largest worker process after its run;
6. ``exporter_scrape_s`` and ``exporter_peak_mb``: ``sgr metrics``' collector scraped in a
   process of its own over a hot store of 1,000,000 recorded outcomes, on SQLite and on
   PostgreSQL when one is at hand (``testbench/benchexporter.py``).

Every event is an eligible abandoned cart of a distinct session (known customers, some new ones),
so each one goes through every stage: state, history, engine, checks, commit and publication.
The Redis is a throwaway ``redis-server`` of the bench's own; the data folder is temporary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testbench.benchkit import (
    BenchConfig,
    CpuMeter,
    Lane,
    Phase,
    batches,
    bench_events,
    fleet_rss,
    machine,
    make_fleet,
    redis_calls,
)
from testbench.benchvllm import endpoint_model, vllm_phase


def _log() -> Any:
    import structlog

    return structlog.get_logger("sgr.bench")


SIMPLE = "rq.worker.SimpleWorker"
FORKING = "rq.worker.Worker"
NOOP_FUNC = "testbench.benchjobs.noop"
ESSENTIALS_FUNC = "testbench.benchjobs.essentials"
PIPELINE_FUNC = "worker.jobs.handle_event"
BATCH_FUNC = "worker.jobs.handle_batch"
TARGETS = {
    "batch_vs_floor": 3.0,
    "redis_commands_per_event": 5,
    "llm_inflight_efficiency": 0.85,
    "rules_vs_floor": 0.8,
    "llm_edge_efficiency_at_16": 0.85,
    "vllm_vs_direct": 0.9,
    "worker_rss_mb": 120,
    "api_vs_floor": 0.5,
    "exporter_scrape_s": 0.5,
    "exporter_peak_mb": 150,
}


def counted(conn: Any, lane: Lane, run: Any, *args: Any) -> tuple[float, int]:
    """``run(*args)`` (draining ``lane``), and the Redis commands it cost the system: INFO commandstats
    around it, less the bench's own polling of the lane and the INFO call."""
    per_poll = 10**9
    for _ in range(5):  # the least of a few: idle workers' own commands land in some readings
        a = redis_calls(conn)
        lane.done()
        per_poll = min(per_poll, redis_calls(conn) - a - 1)
    c0 = redis_calls(conn)
    rate = run(*args)
    c1 = redis_calls(conn)
    return rate, c1 - c0 - 1 - (lane.polls + 2) * per_poll


# Phases --------------------------------------------------------------------------------------
def floor_and_rules(
    cfg: BenchConfig, url: str, conn: Any, phase: Phase, duckdb_phase: Phase | None = None
) -> dict[str, Any]:
    """(1) and (2) on one fleet: no-op batches and pipeline batches, alternating. With
    ``duckdb_phase``, a second fleet reading history straight from DuckDB takes a pipeline batch
    in each round too, so the two history sources are compared under the same load."""
    lane = Lane(conn, "bench-rules")
    per_round = cfg.rules_events
    warm = 4 * cfg.workers
    events = bench_events(
        warm + per_round * cfg.rounds, customers=cfg.customers, seed=cfg.seed, prefix="r"
    )
    floor_payloads = bench_events(
        cfg.floor_jobs, customers=cfg.customers, seed=cfg.seed + 1, prefix="f"
    )
    fleet = make_fleet(
        cfg.workers, url, lane.queue.name, phase.env(cfg.log_level), cfg.worker_class
    )
    floors: list[float] = []
    rules: list[float] = []
    duck: list[float] = []
    refs: list[float] = []
    batched: list[float] = []  # events/s in jobs of cfg.batch_size events
    commands = {"batch": [0, 0], "single": [0, 0]}  # path -> [redis commands, events]
    size = cfg.batch_size
    # enough batch jobs per round that start and tail do not dominate (quick runs too)
    batch_round = max(per_round, 10 * size * cfg.workers)
    batch_events = bench_events(
        warm * size + batch_round * cfg.rounds,
        customers=cfg.customers,
        seed=cfg.seed + 5,
        prefix="b",
    )
    # the reference job's events: their own sessions and customers (it makes offers too)
    ref_events = [
        p | {"user_id": f"ref-{p['user_id']}"}
        for p in bench_events(
            warm + per_round * cfg.rounds, customers=cfg.customers, seed=cfg.seed, prefix="x"
        )
    ]
    duck_lane = Lane(conn, "bench-rules-duckdb") if duckdb_phase else None
    duck_events = bench_events(
        warm + per_round * cfg.rounds, customers=cfg.customers, seed=cfg.seed, prefix="d"
    )
    duck_fleet = (
        make_fleet(
            cfg.workers,
            url,
            duck_lane.queue.name,
            duckdb_phase.env(cfg.log_level, SGR_HISTORY_SOURCE="duckdb"),
            cfg.worker_class,
        )
        if duck_lane and duckdb_phase
        else None
    )
    duck_rss: list[float] = []
    meter = CpuMeter(int(conn.info("server")["process_id"]))
    with contextlib.ExitStack() as stack:
        stack.enter_context(fleet)
        lane.wait_workers(cfg.workers)
        lane.run(NOOP_FUNC, floor_payloads[:warm], 120)
        lane.run(PIPELINE_FUNC, events[:warm], 120)
        lane.run(ESSENTIALS_FUNC, ref_events[:warm], 120)
        lane.run(BATCH_FUNC, batches(batch_events[: warm * size], size), 120)
        if duck_fleet and duck_lane:
            stack.enter_context(duck_fleet)
            duck_lane.wait_workers(cfg.workers)
            duck_lane.run(PIPELINE_FUNC, duck_events[:warm], 120)
        since = datetime.now(UTC)
        pids = [p.pid for p in fleet.alive()]
        duck_pids = [p.pid for p in duck_fleet.alive()] if duck_fleet else []
        for r in range(cfg.rounds):
            timeout = 60 + cfg.floor_jobs / 20
            floors.append(meter.run("floor", pids, lane, NOOP_FUNC, floor_payloads, timeout))
            batch = events[warm + r * per_round : warm + (r + 1) * per_round]
            timeout = 60 + per_round / 10
            rate, used = counted(
                conn, lane, meter.run, "rules", pids, lane, PIPELINE_FUNC, batch, timeout
            )
            rules.append(rate)
            commands["single"][0] += used
            commands["single"][1] += len(batch)
            start = warm * size + r * batch_round
            jobs = batches(batch_events[start : start + batch_round], size)
            rate, used = counted(
                conn, lane, meter.run, "batch", pids, lane, BATCH_FUNC, jobs, timeout
            )
            batched.append(rate * batch_round / len(jobs))
            commands["batch"][0] += used
            commands["batch"][1] += batch_round
            batch = ref_events[warm + r * per_round : warm + (r + 1) * per_round]
            refs.append(meter.run("essentials", pids, lane, ESSENTIALS_FUNC, batch, timeout))
            if duck_lane:
                batch = duck_events[warm + r * per_round : warm + (r + 1) * per_round]
                duck.append(
                    meter.run("rules_duckdb", duck_pids, duck_lane, PIPELINE_FUNC, batch, timeout)
                )
            _log().info(
                "bench_round",
                round=r + 1,
                floor_per_s=round(floors[-1]),
                rules_per_s=round(rules[-1]),
                batch_per_s=round(batched[-1]),
                essentials_per_s=round(refs[-1]),
                rules_duckdb_per_s=round(duck[-1]) if duck else None,
            )
        rss = fleet_rss(fleet)
        if duck_fleet:
            duck_rss = fleet_rss(duck_fleet)
    floor, rule = statistics.median(floors), statistics.median(rules)
    batch_rate = statistics.median(batched)
    result: dict[str, Any] = {
        "rq_floor_per_s": round(floor, 1),
        "pipeline_rules_per_s": round(rule, 1),
        "rules_vs_floor": round(rule / floor, 3),
        "batch_size": size,
        "pipeline_batch_per_s": round(batch_rate, 1),
        "batch_vs_floor": round(batch_rate / floor, 3),
        # the same ratio in CPU (workers + redis-server) per event against per no-op job: less
        # sensitive to a machine shared with other work than the rates
        "batch_vs_floor_cpu": round(
            meter.report()["floor"]["total_ms"] / (meter.report()["batch"]["total_ms"] / size),
            3,
        ),
        "redis_commands_per_event": round(commands["batch"][0] / commands["batch"][1], 2),
        "redis_commands_per_event_single": round(commands["single"][0] / commands["single"][1], 2),
        "history_source": "snapshot",
        "essentials_per_s": round(statistics.median(refs), 1),
        "essentials_vs_floor": round(statistics.median(refs) / floor, 3),
        "pipeline_rules_duckdb_per_s": None,
        "rules_duckdb_vs_floor": None,
        "rounds": {
            "rq_floor_per_s": [round(v, 1) for v in floors],
            "pipeline_rules_per_s": [round(v, 1) for v in rules],
            "pipeline_batch_per_s": [round(v, 1) for v in batched],
            "essentials_per_s": [round(v, 1) for v in refs],
            "pipeline_rules_duckdb_per_s": [round(v, 1) for v in duck],
        },
        "rules_run": phase.stages(since),
        # where the ratio comes from: CPU per job in the workers and in redis-server
        "cpu_ms_per_job": meter.report(),
        "rss_mb": rss,
        "duckdb_rss_mb": duck_rss,
    }
    if duck and duckdb_phase:
        result["pipeline_rules_duckdb_per_s"] = round(statistics.median(duck), 1)
        result["rules_duckdb_vs_floor"] = round(statistics.median(duck) / floor, 3)
        result["rules_duckdb_run"] = duckdb_phase.stages(since)
    return result


def fork_floor(cfg: BenchConfig, url: str, conn: Any, phase: Phase) -> float | None:
    """The forking ``Worker``'s floor with the same number of workers (for the choice of class)."""
    if cfg.fork_floor_jobs <= 0:
        return None
    lane = Lane(conn, "bench-fork")
    payloads = bench_events(
        cfg.fork_floor_jobs, customers=cfg.customers, seed=cfg.seed + 2, prefix="k"
    )
    with make_fleet(cfg.workers, url, lane.queue.name, phase.env(cfg.log_level), FORKING):
        lane.wait_workers(cfg.workers)
        lane.run(NOOP_FUNC, payloads[: 2 * cfg.workers], 120)
        return round(lane.run(NOOP_FUNC, payloads, 60 + cfg.fork_floor_jobs / 10), 1)


def llm_edge(cfg: BenchConfig, url: str, conn: Any, phase: Phase) -> dict[str, Any]:
    """(3): the pipeline against the STAND-IN LLM with W = 1, 4, 16... workers (grown in place)."""
    from testbench.standin_llm import StandInLLM

    latency_s = cfg.llm_latency_ms / 1000
    sizes = sorted(set(cfg.llm_workers))
    counts = {w: max(4 * w, round(w / latency_s * cfg.llm_seconds)) for w in sizes}
    total = sum(counts.values()) + sum(2 * w for w in sizes)
    events = bench_events(total, customers=cfg.customers, seed=cfg.seed + 3, prefix="l")
    lane = Lane(conn, "bench-llm")
    rates: dict[str, float] = {}
    efficiency: dict[str, float] = {}
    runs: dict[str, Any] = {}
    rss: list[float] = []
    with StandInLLM(latency_s=latency_s) as llm:
        env = phase.env(
            cfg.log_level,
            SGR_ENGINE="vllm",
            SGR_LLM_URL=llm.url,
            SGR_LLM_MODEL=llm.model,
        )
        fleet = make_fleet(0, url, lane.queue.name, env, cfg.worker_class)
        used = 0
        try:
            for w in sizes:
                while len(fleet.procs) < w:
                    fleet.spawn()
                lane.wait_workers(w)
                warm = events[used : used + 2 * w]
                used += len(warm)
                lane.run(PIPELINE_FUNC, warm, 180)
                batch = events[used : used + counts[w]]
                used += len(batch)
                since = datetime.now(UTC)
                rate = lane.run(PIPELINE_FUNC, batch, 60 + len(batch) * latency_s * 2)
                rates[str(w)] = round(rate, 2)
                efficiency[str(w)] = round(rate / (w / latency_s), 3)
                runs[str(w)] = phase.stages(since)
                _log().info(
                    "bench_llm",
                    workers=w,
                    offers_per_s=rates[str(w)],
                    efficiency=efficiency[str(w)],
                )
            rss = fleet_rss(fleet)
        finally:
            fleet.stop()
    return {
        "llm_latency_ms": cfg.llm_latency_ms,
        "llm_offers_per_s": rates,
        "llm_ideal_per_s": {str(w): round(w / latency_s, 2) for w in sizes},
        "llm_edge_efficiency": efficiency,
        "llm_runs": runs,
        "rss_mb": rss,
    }


def llm_inflight(cfg: BenchConfig, url: str, conn: Any, phase: Phase) -> dict[str, Any]:
    """Many LLM requests in flight from few processes: ``cfg.inflight_workers`` workers, each
    asking for ``cfg.inflight / workers`` carts at once (SGR_LLM_CONCURRENCY) in batch jobs of
    four times that, against the STAND-IN at ``cfg.inflight_latency_ms``: offers/s beside the ideal
    inflight / latency, and the workers' memory at that load."""
    from testbench.standin_llm import StandInLLM

    workers = cfg.inflight_workers
    per_worker = max(1, cfg.inflight // workers)
    size = 4 * per_worker  # a job's requests keep its share in flight; its commit is the gap
    latency_s = cfg.inflight_latency_ms / 1000
    count = workers * cfg.inflight_jobs * size
    events = bench_events(
        workers * size + count, customers=cfg.customers, seed=cfg.seed + 6, prefix="i"
    )
    lane = Lane(conn, "bench-inflight")
    with StandInLLM(latency_s=latency_s) as llm:
        # a burst of connections at once: a listen backlog of 5 (http.server's) would drop some
        llm.server.socket.listen(4 * cfg.inflight)
        env = phase.env(
            cfg.log_level,
            SGR_ENGINE="vllm",
            SGR_LLM_URL=llm.url,
            SGR_LLM_MODEL=llm.model,
            SGR_LLM_CONCURRENCY=str(per_worker),
        )
        with make_fleet(workers, url, lane.queue.name, env, cfg.worker_class) as fleet:
            lane.wait_workers(workers)
            lane.run(BATCH_FUNC, batches(events[: workers * size], size), 180)
            since = datetime.now(UTC)
            jobs = batches(events[workers * size :], size)
            rate = lane.run(BATCH_FUNC, jobs, 60 + count * latency_s, poll_s=0.02) * size
            rss = fleet_rss(fleet)
            stages = phase.stages(since)
    ideal = workers * per_worker / latency_s
    _log().info("bench_inflight", inflight=workers * per_worker, offers_per_s=round(rate, 1))
    return {
        "inflight": workers * per_worker,
        "inflight_workers": workers,
        "inflight_latency_ms": cfg.inflight_latency_ms,
        "inflight_offers_per_s": round(rate, 2),
        "inflight_ideal_per_s": round(ideal, 2),
        "llm_inflight_efficiency": round(rate / ideal, 3),
        "inflight_run": stages,
        "inflight_rss_mb": rss,
        "rss_mb": rss,
    }


def api_phases(cfg: BenchConfig, url: str, conn: Any, root: Path) -> dict[str, Any]:
    """The HTTP API's redemptions beside its bare endpoint, per hot-store backend; the headline
    figures are SQLite's (PostgreSQL's beside them: ``api_by_backend``)."""
    from testbench.benchapi import api_phase

    found: dict[str, Any] = {}
    for backend in cfg.api_backends:
        _log().info("bench_phase", phase="api", backend=backend, clients=cfg.api_clients)
        try:
            found[backend] = api_phase(
                url, conn, root, backend, clients=cfg.api_clients, redeems=cfg.api_redeems
            )
        except RuntimeError as exc:  # no PostgreSQL to start: said, not fatal
            found[backend] = {"skipped": str(exc)[:300]}
        conn.flushdb()
    head: dict[str, Any] = next((v for v in found.values() if "skipped" not in v), {})
    return {
        "api_redeem_per_s": head.get("api_redeem_per_s"),
        "api_redeem_p99_ms": head.get("api_redeem_p99_ms"),
        "api_vs_floor": head.get("api_vs_floor"),
        "api_by_backend": found,
    }


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """All phases, in one run on one throwaway Redis; one JSON-ready dict."""
    import redis

    from producers.synthetic import customers
    from stores.cold import write_history
    from stores.sync import sync_snapshot
    from testbench.redisproc import RedisServer
    from worker.settings import redact_url

    started = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "config": asdict(cfg), "targets": TARGETS}
    llm_url = cfg.vllm_url
    model = None
    if llm_url is None and cfg.auto_vllm:
        from worker.settings import Settings

        llm_url = Settings().llm_url
    if llm_url:
        model = os.environ.get("SGR_LLM_MODEL") or endpoint_model(llm_url)
        if model is None:
            _log().warning("vllm_not_answering", url=llm_url)
    root = Path(tempfile.mkdtemp(prefix="sgr-bench-"))
    try:
        cold_db = root / "cold.duckdb"
        write_history(cold_db, customers(cfg.customers, seed=cfg.seed))
        sync_snapshot(cold_db, root / "history.sqlite")
        with RedisServer() as server:
            conn = redis.Redis.from_url(server.url)
            info: Any = conn.info("server")
            result["machine"]["redis_server_version"] = info.get("redis_version")
            if cfg.exporter_events:
                from testbench.benchexporter import exporter_phase

                _log().info("bench_phase", phase="exporter", events=cfg.exporter_events)
                result.update(exporter_phase(cfg.exporter_events, root, server.url))
            if cfg.exporter_only:
                result["seconds"] = round(time.monotonic() - started, 1)
                return result
            result["worker_class"] = cfg.worker_class
            result["workers"] = cfg.workers
            _log().info("bench_phase", phase="floor+rules", workers=cfg.workers)
            rules = floor_and_rules(
                cfg,
                server.url,
                conn,
                Phase(root, "rules", cold_db),
                Phase(root, "rules-duckdb", cold_db) if cfg.compare_duckdb else None,
            )
            conn.flushdb()
            _log().info("bench_phase", phase="fork floor", workers=cfg.workers)
            result["rq_floor_fork_per_s"] = fork_floor(
                cfg, server.url, conn, Phase(root, "fork", cold_db)
            )
            conn.flushdb()
            _log().info("bench_phase", phase="llm stand-in", workers=cfg.llm_workers)
            llm = llm_edge(cfg, server.url, conn, Phase(root, "llm", cold_db))
            conn.flushdb()
            _log().info("bench_phase", phase="llm in flight", inflight=cfg.inflight)
            inflight = llm_inflight(cfg, server.url, conn, Phase(root, "inflight", cold_db))
            conn.flushdb()
            result.update(api_phases(cfg, server.url, conn, root))
            conn.flushdb()
            vllm = None
            result["vllm_skipped"] = None
            if not llm_url:
                result["vllm_skipped"] = (
                    "skipped (--no-vllm)" if not cfg.auto_vllm else "no vLLM URL given"
                )
            elif not model:
                result["vllm_skipped"] = (
                    f"no vLLM answering: {redact_url(llm_url)}/models lists no model"
                )
            if llm_url and model:
                _log().info("bench_phase", phase="vllm", url=llm_url, model=model)
                vllm = vllm_phase(
                    cfg, server.url, conn, Phase(root, "vllm", cold_db), llm_url, model
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rss = {
        "rules": rules.pop("rss_mb"),
        "llm": llm.pop("rss_mb"),
        "inflight": inflight.pop("rss_mb"),
    }
    duckdb_rss = rules.pop("duckdb_rss_mb")
    if vllm is not None:
        rss["vllm"] = vllm.pop("rss_mb")
    result.update(rules)
    result.update(llm)
    result.update(inflight)
    result["vllm"] = vllm
    result["vllm_vs_direct"] = vllm["vllm_vs_direct"] if vllm else None
    # the target is about a worker holding many requests in flight (and never less than others)
    all_rss = [v for values in rss.values() for v in values]
    result["worker_rss_mb"] = max(all_rss) if all_rss else None
    result["worker_rss_mb_at_inflight"] = max(rss["inflight"]) if rss["inflight"] else None
    result["worker_rss_mb_by_phase"] = {k: max(v) if v else None for k, v in rss.items()}
    if duckdb_rss:  # the comparison, not the configuration the target is about
        result["worker_rss_mb_by_phase"]["rules_duckdb"] = max(duckdb_rss)
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


# CLI -----------------------------------------------------------------------------------------
def _table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"sgr bench ({result.get('workers')} x {result.get('worker_class')})")
    table.add_column("measure", justify="left", overflow="fold")
    for column in ("rate /s", "compared with", "ratio", "target"):
        table.add_column(column, justify="right", no_wrap=True)
    if result.get("exporter_scrape_s") is not None:
        table.add_row(
            f"exporter scrape s at {result['exporter_events']:,} events",
            f"{result['exporter_scrape_s']:g}",
            f"peak MiB {result['exporter_peak_mb']:g}",
            "",
            "<= 0.5 s, 150 MiB",
        )
    if result["config"].get("exporter_only"):
        return table
    floor = result["rq_floor_per_s"]
    table.add_row("rq floor (no-op job)", f"{floor:g}", "", "", "")
    if result.get("rq_floor_fork_per_s"):
        table.add_row(
            "rq floor, forking Worker",
            f"{result['rq_floor_fork_per_s']:g}",
            f"{floor:g}",
            f"{result['rq_floor_fork_per_s'] / floor:.2f}",
            "",
        )
    table.add_row(
        "pipeline, rules engine",
        f"{result['pipeline_rules_per_s']:g}",
        f"floor {floor:g}",
        f"{result['rules_vs_floor']:.3f}",
        ">= 0.8",
    )
    table.add_row(
        f"pipeline, batches of {result['batch_size']}",
        f"{result['pipeline_batch_per_s']:g}",
        f"floor {floor:g}",
        f"{result['batch_vs_floor']:.3f}",
        ">= 3",
    )
    table.add_row(
        "  Redis commands per event",
        f"{result['redis_commands_per_event']:g}",
        f"1/job {result['redis_commands_per_event_single']:g}",
        "",
        "<= 5",
    )
    if result.get("essentials_per_s"):
        table.add_row(
            "  reference job (essentials)",
            f"{result['essentials_per_s']:g}",
            f"floor {floor:g}",
            f"{result['essentials_vs_floor']:.3f}",
            "",
        )
    if result.get("pipeline_rules_duckdb_per_s"):
        table.add_row(
            "  history read from DuckDB",
            f"{result['pipeline_rules_duckdb_per_s']:g}",
            f"floor {floor:g}",
            f"{result['rules_duckdb_vs_floor']:.3f}",
            "",
        )
    cpu = result.get("cpu_ms_per_job") or {}
    if "floor" in cpu and "rules" in cpu:
        table.add_row(
            "  CPU ms/job, workers+redis",
            f"{cpu['rules']['total_ms']:g}",
            f"floor {cpu['floor']['total_ms']:g}",
            f"{cpu['floor']['total_ms'] / cpu['rules']['total_ms']:.3f}",
            "",
        )
    for w, rate in result["llm_offers_per_s"].items():
        target = ">= 0.85" if w == "16" else ""
        table.add_row(
            f"LLM stand-in {result['llm_latency_ms']:g} ms, W={w}",
            f"{rate:g}",
            f"W/latency {result['llm_ideal_per_s'][w]:g}",
            f"{result['llm_edge_efficiency'][w]:.3f}",
            target,
        )
    table.add_row(
        f"stand-in {result['inflight_latency_ms']:g} ms, {result['inflight']} in flight",
        f"{result['inflight_offers_per_s']:g}",
        f"ideal {result['inflight_ideal_per_s']:g}",
        f"{result['llm_inflight_efficiency']:.3f}",
        ">= 0.85",
    )
    vllm = result.get("vllm")
    if vllm:
        table.add_row(
            f"pipeline + vLLM, {vllm['vllm_inflight']} in flight",
            f"{vllm['vllm_pipeline_per_s']:g}",
            f"direct {vllm['vllm_direct_per_s']:g}",
            f"{vllm['vllm_vs_direct']:.3f}",
            ">= 0.9",
        )
    else:
        why = result.get("vllm_skipped") or "no vLLM answering"
        table.add_row(f"pipeline + vLLM ({why})", "-", "", "null", ">= 0.9")
    for backend, api in (result.get("api_by_backend") or {}).items():
        if "skipped" in api:
            table.add_row(f"API redeem, {backend} ({api['skipped'][:40]})", "-", "", "", ">= 0.5")
            continue
        table.add_row(
            f"API redeem, {backend}, {api['api_clients']} clients, p99 "
            f"{api['api_redeem_p99_ms']:g} ms",
            f"{api['api_redeem_per_s']:g}",
            f"bare endpoint {api['api_floor_per_s']:g}",
            f"{api['api_vs_floor']:.3f}",
            ">= 0.5",
        )
    table.add_row(
        "worker RSS MiB (largest)",
        f"{result['worker_rss_mb']}",
        f"in flight {result['worker_rss_mb_at_inflight']}",
        "",
        "<= 120",
    )
    return table


def main(argv: Sequence[str] | None = None) -> None:
    import typer

    app = typer.Typer(add_completion=False)

    @app.command()
    def bench(
        quick: bool = typer.Option(
            False, "--quick", help="A small run (~30 s): fewer jobs, W=1,4."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
        workers: int = typer.Option(2, help="Workers for the floor and the rules engine."),
        worker_class: str = typer.Option(SIMPLE, help="rq worker class for every phase."),
        rounds: int | None = typer.Option(None, help="Alternating floor/rules batches."),
        jobs: int | None = typer.Option(None, help="Jobs per floor batch and rules batch."),
        fork_jobs: int | None = typer.Option(None, help="Jobs for the forking floor (0 = skip)."),
        llm_workers: str | None = typer.Option(None, help="Comma-separated W for the LLM edge."),
        latency_ms: float = typer.Option(100.0, help="Stand-in LLM latency."),
        llm_seconds: float | None = typer.Option(None, help="Seconds of work per W."),
        vllm_url: str | None = typer.Option(
            None, help="Real vLLM URL (default: SGR_LLM_URL if it answers)."
        ),
        vllm_workers: int | None = typer.Option(None, help="Worker processes against vLLM."),
        vllm_inflight: int | None = typer.Option(None, help="Requests in flight against vLLM."),
        batch_size: int | None = typer.Option(None, help="Events per job (batch_vs_floor)."),
        inflight: int | None = typer.Option(None, help="LLM requests in flight (stand-in)."),
        inflight_latency_ms: float | None = typer.Option(None, help="Its stand-in latency."),
        inflight_jobs: int | None = typer.Option(None, help="Batch jobs per worker there."),
        vllm_requests: int | None = typer.Option(None, help="Requests against vLLM."),
        no_vllm: bool = typer.Option(False, help="Skip the vLLM comparison."),
        api_backends: str | None = typer.Option(
            None, help="Hot stores of the API phase: sqlite,postgres ('' = skip it)."
        ),
        api_redeems: int | None = typer.Option(None, help="Redemptions per API backend."),
        no_duckdb: bool = typer.Option(
            False, help="Skip the rules batches that read history from DuckDB."
        ),
        log_level: str = typer.Option("INFO", help="Workers' log level."),
        exporter_events: int | None = typer.Option(
            None, help="Outcomes the exporter is scraped at (default 1,000,000; 0 = skip)."
        ),
        exporter_only: bool = typer.Option(False, help="Only the exporter phase."),
    ) -> None:
        """Measure the pipeline beside RQ's floor, a fixed-latency LLM edge and vLLM."""
        import json

        from rich.console import Console

        from worker.logs import configure

        configure(json_logs=False, level="INFO")
        overrides: dict[str, Any] = {
            "workers": workers,
            "worker_class": worker_class,
            "llm_latency_ms": latency_ms,
            "vllm_url": vllm_url,
            "auto_vllm": not no_vllm,
            "compare_duckdb": not no_duckdb,
            "log_level": log_level,
            "exporter_only": exporter_only,
        }
        if exporter_events is not None:
            overrides["exporter_events"] = exporter_events
        if rounds is not None:
            overrides["rounds"] = rounds
        if jobs is not None:
            overrides["floor_jobs"] = overrides["rules_events"] = jobs
        if fork_jobs is not None:
            overrides["fork_floor_jobs"] = fork_jobs
        if llm_workers:
            overrides["llm_workers"] = tuple(int(w) for w in llm_workers.split(","))
        if llm_seconds is not None:
            overrides["llm_seconds"] = llm_seconds
        if vllm_workers is not None:
            overrides["vllm_workers"] = vllm_workers
        for name, value in (
            ("vllm_inflight", vllm_inflight),
            ("batch_size", batch_size),
            ("inflight", inflight),
            ("inflight_latency_ms", inflight_latency_ms),
            ("inflight_jobs", inflight_jobs),
        ):
            if value is not None:
                overrides[name] = value
        if vllm_requests is not None:
            overrides["vllm_requests"] = vllm_requests
        if api_backends is not None:
            overrides["api_backends"] = tuple(b for b in api_backends.split(",") if b)
        if api_redeems is not None:
            overrides["api_redeems"] = api_redeems
        cfg = BenchConfig.quick(**overrides) if quick else BenchConfig(**overrides)
        result = run_bench(cfg)
        Console(stderr=as_json).print(_table(result))
        if as_json:
            typer.echo(json.dumps(result))

    app(args=list(argv) if argv is not None else None, prog_name="sgr bench")


if __name__ == "__main__":
    main()
