"""``sgr eval``: how a real model writes offers, measured (schema validity, answers used as they
came, over-cap offers, message checks, latency, tokens). The logic is in ``testbench/evaluate.py``,
imported when the command runs."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli.app import app, fail, out, settings


@app.command("eval")
def evaluate(
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible URL (default: SGR_LLM_URL).")
    ] = None,
    carts: Annotated[int, typer.Option(min=1, help="Eligible abandoned carts to run.")] = 100,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests at once.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic carts.")] = 11,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="Seconds per LLM request (SGR_LLM_TIMEOUT_S).")
    ] = None,
    negotiation: Annotated[
        bool,
        typer.Option(
            "--negotiation",
            help="Route the labelled customer messages (testbench/negotiation_corpus.jsonl) "
            "instead, with the engine SGR_ENGINE selects, and report route_accuracy.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run N eligible abandoned carts through the pipeline's stages against a real LLM server
    (nothing is committed or published) and report what the model wrote."""
    from testbench.evaluate import dumps, run_eval
    from worker.engines.vllm import endpoint_answers
    from worker.logs import configure
    from worker.settings import redact_url

    configure(json_logs=True, level="CRITICAL")
    if (
        negotiation
    ):  # the default set-up: whatever SGR_ENGINE selects (auto: the model if it answers)
        from testbench.evaluate import run_negotiation_eval

        s = settings(llm_url=llm_url, llm_timeout_s=timeout, job_timeout_s=86400)
        result = run_negotiation_eval(s, concurrency=concurrency)
        print(dumps(result)) if as_json else out(result)
        return
    # No RQ job runs here: the job timeout only has to let the LLM's own timeout and retries act.
    s = settings(llm_url=llm_url, llm_timeout_s=timeout, engine="vllm", job_timeout_s=86400)
    if not endpoint_answers(s.llm_url, api_key=s.llm_api_key):
        fail(f"no OpenAI-compatible server answers at {redact_url(s.llm_url)}/models (--llm-url)")
    result = run_eval(s, carts=carts, concurrency=concurrency, seed=seed)
    print(dumps(result)) if as_json else out(result)
