"""PostgreSQL for tests and the chaos run: the one at ``SGR_TEST_POSTGRES_URL``, else the one on
127.0.0.1:5432 if it answers, else a throwaway server of our own (initdb + pg_ctl on a free
loopback port in a temporary folder; as the ``postgres`` user when run as root, since PostgreSQL
refuses to run as root). Only a server started here is stopped here.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbench.redisproc import free_port

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL is not installed: `apt-get install -y postgresql` (or set "
        "SGR_TEST_POSTGRES_URL to a running server)"
    )


class PostgresServer:
    """``with PostgresServer() as server: server.url`` (a superuser URL, trust auth)."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = _bindir()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sgr-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-400:]}{done.stderr[-400:]}")

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self._launch()

    def _launch(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        log = str(self.dir / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def restart(self) -> None:
        """A fast restart (``pg_ctl restart -m fast``): every connection is closed, the server is
        down for a moment and comes back with its data (what a failover or an upgrade does to the
        clients)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._launch()  # pg_ctl restart would hand the server our stdout: start it as at first

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def postgres_server() -> Iterator[str]:
    """A superuser URL of a PostgreSQL to test on (see the module's text)."""
    given = os.environ.get("SGR_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    if _answers("127.0.0.1", 5432):
        yield DEFAULT_URL
        return
    with PostgresServer() as server:
        yield server.url


def terminate_backends(url: str) -> int:
    """Close every other connection to the database of ``url`` (``pg_terminate_backend``, what
    an administrator, a failover or a restart does to clients); how many were closed."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        rows = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(rows[0]) if rows else 0


@contextmanager
def fresh_database(server_url: str, prefix: str = "sgr_test_", keep: bool = False) -> Iterator[str]:
    """A new empty database on that server for the duration (dropped after, connections and all,
    unless ``keep``)."""
    import psycopg

    name = f"{prefix}{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server_url, name)
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(server_url: str, name: str) -> str:
    """The server's URL with another database name (still a URL, so ``redact_url`` applies)."""
    base, _, query = server_url.partition("?")
    head, _, _db = base.rpartition("/")
    if "://" not in head:  # no path in the URL: ``postgresql://host:port``
        head = base
    return f"{head}/{name}" + (f"?{query}" if query else "")
