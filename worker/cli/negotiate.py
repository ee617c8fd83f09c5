"""``sgr negotiate``: one turn of a negotiation, run synchronously through the same stages a
worker runs for a ``customer_message`` event (``worker/handlers/message.py``)."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

import typer

from worker.cli.app import DataDir, app, fail, out, redis_client, settings

# The cart of a conversation that has none yet (no --session state, no --cart-value): the
# README documents these defaults.
DEFAULT_CART_VALUE = 100.0
DEFAULT_MARGIN = 0.4
DEFAULT_CURRENCY = "EUR"


class NoHistory:
    """No history snapshot or cold store in the data folder: every customer is new."""

    def history(self, user_id: str) -> None:
        return None

    def close(self) -> None:
        return None


@app.command()
def negotiate(
    message: Annotated[str, typer.Argument(help="The customer's message.")],
    user: Annotated[str, typer.Option("--user", help="The customer's user id.")],
    session: Annotated[
        str | None,
        typer.Option(help="Continue this conversation (default: a new session id, printed)."),
    ] = None,
    cart_value: Annotated[
        float | None,
        typer.Option(help=f"Cart value (default: the session's, else {DEFAULT_CART_VALUE:g})."),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(help=f"Cart margin 0..1 (default: the session's, else {DEFAULT_MARGIN:g})."),
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Currency (default EUR).")] = None,
    inventory: Annotated[
        str, typer.Option(help="in_stock, low_stock or out_of_stock (with a cart).")
    ] = "in_stock",
    engine: Annotated[
        str | None, typer.Option(help="vllm, policy or auto (default SGR_ENGINE).")
    ] = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run one negotiation turn for a customer's message: the route (price, respond, escalate,
    accept), the reasoning, and the reply, with the counter-offer when one is made (never above
    the cap, never below the offer already made). The turn is recorded in the hot store and
    published on the result stream (when Redis answers; else a worker's outbox publishes it)."""
    from datetime import UTC, datetime

    import redis

    from stores.base import HotStore
    from worker.domain.events import InvalidEvent, parse_event
    from worker.logs import configure
    from worker.runner import run_turn
    from worker.runtime import build_runtime, open_store

    configure(json_logs=True, level="WARNING")
    s = settings(data_dir, engine=engine)
    now = datetime.now(UTC)
    session_id = session or f"chat-{secrets.token_hex(6)}"
    hot: HotStore = open_store(s)
    try:
        state = hot.get_session(session_id)
        if session is not None and state is not None and state.user_id != user:
            fail(f"--session {session!r} belongs to another user than {user!r}")
        payload: dict[str, Any] = {
            "event_id": f"cli-{secrets.token_hex(8)}",
            "type": "customer_message",
            "occurred_at": now.isoformat(),
            "user_id": user,
            "session_id": session_id,
            "message": message,
        }
        has_cart = state is not None and state.cart_value is not None
        if cart_value is not None or margin is not None or currency is not None or not has_cart:
            payload["cart"] = {
                "currency": currency or (state.currency if state else None) or DEFAULT_CURRENCY,
                "value": cart_value
                if cart_value is not None
                else (state.cart_value if has_cart and state else DEFAULT_CART_VALUE),
                "margin": margin
                if margin is not None
                else (state.margin if has_cart and state else DEFAULT_MARGIN),
            }
            payload["inventory"] = inventory
        try:
            event = parse_event(payload, now, s.time_limits())
        except InvalidEvent as exc:
            fail(str(exc).replace("invalid cart event: ", ""))
        client = redis_client(s)
        try:
            client.ping()
            reachable = True
        except (redis.ConnectionError, redis.TimeoutError):
            reachable = False
        has_history = s.history_db.exists() or s.cold_db.exists()
        hot.close()  # the runtime opens its own, the one a worker would
        runtime = build_runtime(s, client, history=None if has_history else NoHistory())
        hot = runtime.deps.hot
        deps = runtime.deps
        published = reachable
        if reachable:
            result = run_turn(event, deps)
            turn, offer = result.turn, result.offer
            route_engine, price_engine = result.route_engine, result.price_engine
        else:  # committed, then the publication fails: a worker's outbox publishes it later
            try:
                run_turn(event, deps)
            except (redis.ConnectionError, redis.TimeoutError):
                published = False
            turn = hot.get_turn(event.event_id)
            offer = hot.get_offer(turn.offer_id) if turn and turn.offer_id else None
            engines = (turn.reasoning.get("engines") or {}) if turn else {}
            route_engine, price_engine = engines.get("route"), engines.get("price")
        if turn is None:  # the session belongs to another user: refused, nothing answered
            fail(f"session {session_id!r} belongs to another user than {user!r}")
        router = turn.reasoning.get("router") or {}
        pricing = turn.reasoning.get("pricing")
        figures = {
            "session_id": turn.session_id,
            "user_id": turn.user_id,
            "turn": turn.turn,
            "route": turn.route,
            "reason": turn.reason,
            "engine": {"route": route_engine, "price": price_engine},
            "model": turn.model,
            "reasoning": {"analysis": router.get("analysis"), "pricing": pricing},
            "discount_percent": offer.discount_pct if offer else None,
            "cap_percent": turn.cap_pct,
            "floor_percent": turn.reasoning.get("floor_pct"),
            "code": offer.code if offer else None,
            "supersedes": turn.reasoning.get("supersedes"),
            "reply": turn.reply,
            "published": published,
        }
        if as_json:
            print(json.dumps(figures))
            return
        out(f"[bold]route[/bold] {turn.route} (engine {route_engine}) turn {turn.turn}")
        out(f"[bold]analysis[/bold] {router.get('analysis')}")
        for name, value in (pricing or {}).items():
            out(f"[bold]{name}[/bold] {value}")
        if turn.cap_pct is not None:
            out(f"[bold]cap[/bold] {turn.cap_pct:g}%  [bold]price engine[/bold] {price_engine}")
        out(f"[bold]reply[/bold]\n{turn.reply}")
        more = "" if published else " (not yet published: Redis did not answer)"
        out(f"continue with --session {turn.session_id}{more}")
    finally:
        hot.close()
