"""``sgr api`` (the HTTP API) and ``sgr api-key`` (its keys: create, list, revoke)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.app import app, fail, redis_client, settings

keys_app = typer.Typer(
    help="API keys of `sgr api`: made once, stored hashed.", no_args_is_help=True,
    rich_markup_mode=None,
)  # fmt: skip
app.add_typer(keys_app, name="api-key")


@app.command("api")
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    openapi: Annotated[
        Path | None,
        typer.Option(help="Write the OpenAPI document to this file ('-': stdout) and exit."),
    ] = None,
    bench_floor: Annotated[
        bool, typer.Option(hidden=True, help="Add the bench's bare endpoint.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Probe: exit 0 if the API at --host/--port answers /healthz, else 1."
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (events, outcomes, offers, codes; docs/api.md) with uvicorn."""
    if check:
        import httpx

        where = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/healthz"
        try:
            answer = httpx.get(where, timeout=3)
        except httpx.HTTPError as exc:
            fail(f"the API at {where} does not answer: {exc}")
        if answer.status_code != 200:
            fail(f"the API at {where} answered {answer.status_code}")
        print(f"ok: {where}")
        return
    if openapi is not None:
        from worker.api.server import openapi_text

        text = openapi_text()
        if str(openapi) == "-":
            print(text, end="")
        else:
            openapi.write_text(text)
        return
    from worker.api.server import serve

    serve(settings(), host, port, floor=bench_floor)


@keys_app.command("create")
def key_create(
    scope: Annotated[str, typer.Option(help="producer (events), checkout (offers, codes), admin.")],
    name: Annotated[str, typer.Option(help="Who holds it (shown by `sgr api-key list`).")] = "",
) -> None:
    """Make a key: its id and scope, then the key itself as the last line (shown this once)."""
    from datetime import UTC, datetime

    from worker.api.apikeys import SCOPES, KeyRing
    from worker.keys import Keys

    if scope not in SCOPES:
        fail(f"--scope must be one of {', '.join(SCOPES)} (got {scope!r})")
    s = settings()
    key, record = KeyRing(redis_client(s), Keys.from_settings(s)).create(
        scope, name, datetime.now(UTC)
    )
    print(f"api key {record.key_id} (scope {scope}{', ' + name if name else ''}); keep it, it is "
          "not shown again:")  # fmt: skip
    print(key)


@keys_app.command("revoke")
def key_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after sgrk_): refused from its next request."""
    from datetime import UTC, datetime

    from worker.api.apikeys import KeyRing
    from worker.keys import Keys

    s = settings()
    ring = KeyRing(redis_client(s), Keys.from_settings(s))
    if not ring.revoke(key_id, datetime.now(UTC)):
        fail(f"no live API key with id {key_id!r}")
    print(f"revoked api key {key_id}")


@keys_app.command("list")
def key_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The keys' ids, scopes, names and times (never the keys)."""
    from worker.api.apikeys import KeyRing
    from worker.keys import Keys

    s = settings()
    for record in KeyRing(redis_client(s), Keys.from_settings(s)).all():
        if as_json:
            print(json.dumps(record.public()))
        else:
            state = f"revoked {record.revoked_at}" if record.revoked_at else "live"
            print(f"{record.key_id}  {record.scope:<8}  {state}  {record.name}")
