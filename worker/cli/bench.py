"""``sgr`` commands of the demo and the test bench: they import ``testbench`` (and the load
tools) only when they run."""

from __future__ import annotations

import json
import shutil
from typing import Annotated

import typer

from worker.cli.app import DataDir, app, fail, out, settings

# Load testing: thin wrappers; each tool parses its own options (`sgr loadgen --help`).
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def needs_redis_server(command: str) -> None:
    """``sgr chaos`` and ``sgr bench`` start a throwaway redis-server: where none is installed
    (the worker image), one line says so before anything starts."""
    if shutil.which("redis-server") is None:
        fail(
            f"`sgr {command}` starts a redis-server of its own, and none is installed here "
            "(apt-get install redis-server; the worker image has none: run it where "
            f"`make {command}` runs)"
        )


@app.command()
def demo(
    data_dir: DataDir = None,
    sessions: Annotated[int, typer.Option(help="Synthetic cart sessions.")] = 120,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible URL, e.g. vLLM.")] = None,
    engine: Annotated[str | None, typer.Option(help="auto, vllm or policy.")] = None,
    force: Annotated[bool, typer.Option(help="Reuse a demo folder made before.")] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Use this Redis (keys under sgr-demo) instead of a redis-server of its own."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with the summary as JSON.")] = False,
) -> None:
    """Seed a demo data folder of its own, push a few hundred events under a Redis namespace of
    its own, drain them with a worker, show offers and a summary. Never touches real stores: it
    starts a redis-server of its own (in-process fakeredis where none is installed) and never
    reads SGR_REDIS_URL; only --redis-url makes it use another Redis."""
    from testbench.demo import DemoRefused, print_demo, run_demo
    from worker.cli.app import fail
    from worker.logs import configure

    configure(json_logs=True, level="CRITICAL")
    if llm_url and engine is None:
        engine = "vllm"
    s = settings(llm_url=llm_url, engine=engine)
    try:
        result = run_demo(s, sessions=sessions, data_dir=data_dir, force=force, redis_url=redis_url)
    except DemoRefused as exc:
        fail(str(exc))
    print_demo(result, to_stderr=as_json)
    if as_json:
        print(json.dumps(result.summary, default=str))


@app.command()
def chaos(
    events: Annotated[int, typer.Option(help="Events to push (with faults among them).")] = 500,
    workers: Annotated[int, typer.Option(help="rq worker processes.")] = 3,
    seed: int = 23,
    batch: Annotated[int, typer.Option(help="Events per RQ job.")] = 1,
    max_time: Annotated[float, typer.Option(help="Overall time bound in seconds.")] = 240.0,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder (logs, stores).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fault-injection run on its own redis-server, stand-in LLM and workers, then reconcile:
    lost, duplicate_offers and published_mismatch must be 0. Exit 1 otherwise."""
    from testbench.chaos import ChaosConfig, run_chaos
    from worker.logs import configure

    needs_redis_server("chaos")
    configure(json_logs=True, level="WARNING")
    report = run_chaos(
        ChaosConfig(
            events=events, workers=workers, seed=seed, max_time_s=max_time, keep=keep, batch=batch
        )
    )
    print(json.dumps(report)) if as_json else out(report)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def loadgen(ctx: typer.Context) -> None:
    """Open-loop load at a target rate (mix, bursts, live display); --replay FILE pushes recorded
    events at their pace. Options: sgr loadgen --help."""
    from producers.loadgen import app as loadgen_app

    loadgen_app(args=ctx.args, prog_name="sgr loadgen")


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def report(ctx: typer.Context) -> None:
    """A run's throughput, latency percentiles, time per stage, errors and fallbacks (--json,
    --plot FILE.png). Options: sgr report --help. `sgr report lift`: the holdout experiment's
    lift (sgr report lift --help)."""
    if ctx.args[:1] == ["lift"]:  # the holdout experiment's lift (worker/cli/lift.py)
        from worker.cli.lift import lift_app

        lift_app(args=ctx.args[1:], prog_name="sgr report lift", standalone_mode=False)
        return
    from testbench.collector import app as collector_app

    collector_app(args=ctx.args, prog_name="sgr report")


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """The pipeline beside RQ's floor, a fixed-latency LLM edge and vLLM, in one run (--quick,
    --json). Options: sgr bench --help."""
    from testbench.bench import main as bench_main

    if not {"--help", "-h"} & set(ctx.args):
        needs_redis_server("bench")
    bench_main(ctx.args)
