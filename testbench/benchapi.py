"""The API phase of ``sgr bench``: redemptions per second over real HTTP beside a bare endpoint of
the same server, side by side in one run.

One ``sgr api`` process (started with its bench-only bare endpoint, ``/bench/floor/{code}``: the
same uvicorn, FastAPI, body model, thread and JSON answer, none of the work) on the bench's Redis
and a fresh hot store (SQLite in the bench's folder; PostgreSQL from testbench/pgproc.py when one
is there). ``clients`` keep-alive connections, opened once and kept for the whole phase as a
shop's HTTP client pool keeps them (a small asyncio HTTP/1.1 client, so that the client costs
little of the machine the server shares), send, round after round, first the floor's requests,
then as many redemptions of distinct live codes (each a key check in Redis, a rate-limit
count, the code's read and the one UPDATE). ``api_vs_floor`` = redeems/s over floor requests/s
(the median of the turns' ratios); ``api_redeem_p99_ms`` from every redemption's latency.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from producers.stats import percentile
from testbench.apiproc import ApiServer


def _offers(hot: Any, count: int, tag: str) -> list[tuple[str, str]]:
    """``count`` live offers to distinct customers, written in one transaction; (code, user)."""
    from worker.domain.codes import new_code
    from worker.domain.model import Offer

    now = datetime.now(UTC)
    codes = []
    with hot.transaction():
        for n in range(count):
            code = new_code()
            hot.insert_offer(
                Offer(
                    offer_id=f"b{tag}-{n}", event_id=f"be{tag}-{n}", session_id=f"bs{tag}-{n}",
                    user_id=f"bu{tag}-{n}", currency="EUR", cart_value=100.0, margin=0.4,
                    segment="mid", cap_pct=10.0, discount_pct=5.0, code=code,
                    expires_at=now + timedelta(hours=2), engine="policy", model=None,
                    reasoning={}, message="Hello", guardrail=None, created_at=now,
                )
            )  # fmt: skip
            codes.append((code, f"bu{tag}-{n}"))
    return codes


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int, clients: int) -> list[Connection]:
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]


async def _drive(
    connections: list[Connection], key: str, requests: list[tuple[str, bytes]]
) -> tuple[float, list[float], dict[int, int]]:
    """Send ``requests`` (path, JSON body) over the open keep-alive ``connections``: the rate,
    each request's latency (s), the count of each status."""
    todo = list(reversed(requests))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while todo:
            path, body = todo.pop()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            start = time.perf_counter()
            writer.write(head + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(
                int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client(reader, writer) for reader, writer in connections))
    return len(requests) / (time.perf_counter() - start), latencies, statuses


@contextmanager
def _store(backend: str, root: Path) -> Iterator[str]:
    """SGR_HOT_STORE_URL of a fresh hot store of ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{root / f'api-{time.monotonic_ns()}.sqlite'}"
        return
    from testbench.pgproc import fresh_database, postgres_server

    with postgres_server() as url, fresh_database(url) as db:
        yield db


def api_phase(
    redis_url: str,
    conn: Any,
    root: Path,
    backend: str,
    *,
    clients: int = 32,
    redeems: int = 2000,
    chunk: int = 100,
) -> dict[str, Any]:
    """One backend's figures: ``api_redeem_per_s``, ``api_floor_per_s``, ``api_vs_floor``,
    ``api_redeem_p99_ms``. Floor and redemptions take turns by ``chunk`` requests (each first
    every other time), so that both see the same machine (the 2 cores the bench shares); each
    rate is its requests over the summed time of its turns, and ``api_vs_floor`` the median of
    the turns' ratios (a burst of other load on the machine moves one pair, not the figure)."""
    from stores.hot import open_hot_store
    from worker.api.apikeys import KeyRing
    from worker.keys import Keys
    from worker.settings import Settings

    tag = backend[0]
    with _store(backend, root) as url:
        hot = open_hot_store(url, root / "unused.sqlite")
        try:
            warm, codes = _offers(hot, 200, f"{tag}w"), _offers(hot, redeems, tag)
        finally:
            hot.close()
        key, _ = KeyRing(conn, Keys.from_settings(Settings())).create(
            "checkout", "bench", datetime.now(UTC)
        )
        env = {
            "SGR_REDIS_URL": redis_url,
            "SGR_HOT_STORE_URL": url,
            "SGR_DATA_DIR": str(root),
            "SGR_API_RATE_LIMIT": "10000000",  # counted as in production, never reached
            "SGR_LOG_LEVEL": "WARNING",
        }
        spent = {"floor": 0.0, "redeem": 0.0}
        pair: dict[str, float] = {}
        ratios: list[float] = []
        latencies: list[float] = []
        wrong: dict[str, int] = {}
        with ApiServer(env, floor=True) as server, asyncio.Runner() as runner:
            connections = runner.run(_connect(server.port, clients))

            def turn(kind: str, batch: list[tuple[str, str]]) -> None:
                route = "/bench/floor/{}" if kind == "floor" else "/v1/codes/{}/redeem"
                requests = [
                    (route.format(code), json.dumps({"user_id": user}).encode())
                    for code, user in batch
                ]
                rate, lat, statuses = runner.run(_drive(connections, key, requests))
                spent[kind] += len(requests) / rate
                pair[kind] = rate
                if kind == "redeem":
                    latencies.extend(lat)
                for status, n in statuses.items():
                    if status != 200:
                        wrong[f"{kind}:{status}"] = wrong.get(f"{kind}:{status}", 0) + n

            turn("redeem", warm)  # threads, connections, caches
            spent["redeem"], latencies[:] = 0.0, []
            for n, start in enumerate(range(0, len(codes), chunk)):
                batch = codes[start : start + chunk]
                for kind in ("floor", "redeem") if n % 2 == 0 else ("redeem", "floor"):
                    turn(kind, batch)  # each goes first every other time
                ratios.append(pair["redeem"] / pair["floor"])
            for _, writer in connections:
                writer.close()
    floor, rate = len(codes) / spent["floor"], len(codes) / spent["redeem"]
    ordered = sorted(latencies)
    return {
        "api_redeem_per_s": round(rate, 1),
        "api_floor_per_s": round(floor, 1),
        "api_vs_floor": round(statistics.median(ratios), 3),
        "api_vs_floor_of_totals": round(rate / floor, 3),
        "api_redeem_p99_ms": round(percentile(ordered, 99) * 1000, 1),
        "api_redeem_p50_ms": round(percentile(ordered, 50) * 1000, 1),
        "api_clients": clients,
        "api_redeems": len(codes),
        "api_not_ok": wrong,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m testbench.benchapi [--backends sqlite,postgres] [--redeems N]``: the API phase
    alone, on a throwaway Redis (``sgr bench`` runs it among the others); one JSON object."""
    import argparse
    import shutil
    import tempfile

    import redis

    from testbench.redisproc import RedisServer

    parser = argparse.ArgumentParser(prog="python -m testbench.benchapi")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--redeems", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sgr-benchapi-"))
    found: dict[str, Any] = {}
    try:
        with RedisServer() as server:
            conn = redis.Redis.from_url(server.url)
            for backend in args.backends.split(","):
                found[backend] = api_phase(
                    server.url, conn, root, backend, clients=args.clients, redeems=args.redeems
                )
                conn.flushdb()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
