"""Versioned schema migrations of the hot store, on the SQLite file and on a real PostgreSQL
database: a store of the release before (its DDL kept in tests/fixtures) is upgraded with every
row kept; a schema newer than this release is refused in one line; a migration that fails changes
nothing; workers opening a fresh store at once migrate it once; `sgr migrate` says what it did."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from stores.base import StoreUnavailable
from stores.hot import open_hot_store
from stores.migrations import Migration, known_migrations, upgrade
from stores.sqlfiles import pyformat
from tests.conftest import NOW
from worker.cli import app
from worker.cli.app import main
from worker.domain.codes import new_code, new_offer_id
from worker.domain.model import Offer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TABLES = ("sessions", "processed_events", "offers", "turns", "offer_voids")
LATEST = known_migrations("sqlite")[-1].version  # numbers may have gaps (reserved)
COUNT = len(known_migrations("sqlite"))


class Raw:
    """The database as a driver sees it, without the store: to make an old one and to look."""

    def __init__(self, url: str, path: Path) -> None:
        self.url, self.path = url, path
        self.dialect = "postgres" if url else "sqlite"

    def script(self, text: str) -> None:
        if self.url:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(text)  # type: ignore[arg-type]
        else:
            with sqlite3.connect(self.path) as conn:
                conn.executescript(text)
            conn.close()

    def rows(self, text: str) -> list[tuple[Any, ...]]:
        if self.url:
            with psycopg.connect(self.url, autocommit=True) as conn:
                return conn.execute(text).fetchall()  # type: ignore[arg-type]
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(text).fetchall()
        finally:
            conn.close()

    def make_v0(self) -> None:
        """A store as the release before versioned migrations made it, with rows in every table."""
        suffix = "pg" if self.url else "sqlite"
        self.script((FIXTURES / f"hot_schema_v0_{suffix}.sql").read_text())
        self.script((FIXTURES / "hot_rows_v0.sql").read_text())

    def everything(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t: self.rows(f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES}

    def versions(self) -> list[tuple[int, str]]:
        return [(int(v), n) for v, n in self.rows("SELECT version, name FROM schema_migrations")]

    def has_index(self, name: str) -> bool:
        if self.url:
            return bool(self.rows(f"SELECT 1 FROM pg_indexes WHERE indexname = '{name}'"))
        return bool(self.rows(f"SELECT 1 FROM sqlite_master WHERE name = '{name}'"))


@pytest.fixture
def raw(hot_store_url: str, tmp_path: Path) -> Raw:
    return Raw(hot_store_url, tmp_path / "hot.sqlite")


def offer(user: str = "u9") -> Offer:
    return Offer(
        offer_id=new_offer_id(), event_id=f"ev-{user}", session_id=f"s-{user}", user_id=user,
        currency="EUR", cart_value=80.0, margin=0.3, segment="new", cap_pct=10.0,
        discount_pct=5.0, code=new_code(), expires_at=NOW + timedelta(hours=48), engine="policy",
        model=None, reasoning={}, message="Hello.", guardrail=None, created_at=NOW,
    )  # fmt: skip


def test_a_store_of_the_release_before_is_upgraded_with_every_row_kept(raw: Raw) -> None:
    raw.make_v0()
    before = raw.everything()
    assert all(before[t] for t in TABLES)  # rows in every table

    store = open_hot_store(raw.url, raw.path, migrate=False)
    try:
        report = store.migrate()
        assert report.before == 0 and report.after == LATEST
        assert report.applied == tuple(m.name for m in known_migrations(raw.dialect))
        after = raw.everything()
        # every row, every value; columns added since (version 3: offer_voids.reason and
        # published_at) are empty on the old rows
        kept = {k: [r[: len(before[k][0])] for r in rows] for k, rows in after.items()}
        assert kept == before
        assert all(set(r[len(before[k][0]) :]) <= {None} for k, rows in after.items() for r in rows)
        assert raw.versions() == [(m.version, m.name) for m in known_migrations(raw.dialect)]
        assert raw.has_index("offers_published")  # version 2 on SQLite (PostgreSQL had it)

        # the rows read back through the store as they were written by the release before
        got = store.get_offer("o2")
        assert got is not None and got.guardrail == ("above_cap: 40 > 12.5",)
        assert got.redeemed_at == datetime(2026, 1, 3, tzinfo=UTC)
        voided = store.code_state("SGR-AB12-CD34-EF56")
        assert voided is not None and voided.superseded_by == "o2"
        assert [t.reply for t in store.conversation("s1", "u1").turns] == ["Ten percent."]
        session = store.get_session("s1")
        assert session is not None
        assert session.last_event_at == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        with store.transaction():  # and it takes new rows
            store.insert_offer(offer())
        assert store.summary()["events"] == 4
        assert store.migrate().applied == ()  # a second run has nothing to do
    finally:
        store.close()
    reopened = open_hot_store(raw.url, raw.path)
    assert reopened.last_offer_at("u9") == NOW
    reopened.close()


def test_a_schema_newer_than_this_worker_is_refused_in_one_line(raw: Raw) -> None:
    open_hot_store(raw.url, raw.path).close()
    raw.script(
        "INSERT INTO schema_migrations (version, name, applied_at) "
        f"VALUES ({LATEST + 1}, '{LATEST + 1:04d}_from_the_future', '2027-01-01T00:00:00+00:00')"
    )
    with pytest.raises(StoreUnavailable) as caught:
        open_hot_store(raw.url, raw.path)
    text = str(caught.value)
    assert "\n" not in text
    assert f"schema version {LATEST + 1}" in text and f"(up to {LATEST})" in text
    assert len(raw.versions()) == COUNT + 1  # nothing was touched


def test_a_new_migration_adds_a_column_to_a_deployed_store(raw: Raw) -> None:
    """The case versioned migrations exist for: a column added after a store holds rows."""
    store = open_hot_store(raw.url, raw.path)
    try:
        with store.transaction():
            store.insert_offer(offer())
        added = Migration(
            LATEST + 1, f"{LATEST + 1:04d}_offer_note", "ALTER TABLE offers ADD note TEXT;"
        )
        report = upgrade(store, (*known_migrations(store.dialect), added))
        assert report.applied == (added.name,) and report.after == LATEST + 1
        raw.script("UPDATE offers SET note = 'kept'")
        assert raw.rows("SELECT user_id, note FROM offers") == [("u9", "kept")]
    finally:
        store.close()
    with pytest.raises(StoreUnavailable, match=f"schema version {LATEST + 1}"):
        open_hot_store(raw.url, raw.path)  # this release does not know that column's version


def test_a_migration_that_fails_changes_nothing(raw: Raw) -> None:
    store = open_hot_store(raw.url, raw.path)
    try:
        broken = Migration(
            LATEST + 1,
            f"{LATEST + 1:04d}_broken",
            "ALTER TABLE offers ADD note TEXT;\nINSERT INTO no_such_table VALUES (1);\n",
        )
        with pytest.raises((sqlite3.Error, psycopg.Error)):
            upgrade(store, (*known_migrations(store.dialect), broken))
    finally:
        store.close()
    assert max(v for v, _ in raw.versions()) == LATEST
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        raw.rows("SELECT note FROM offers")  # the column of the failed migration is not there


def _opener(url: str, path: str) -> None:
    open_hot_store(url, Path(path)).close()


def test_a_version_below_the_newest_that_landed_later_is_applied(raw: Raw) -> None:
    """Numbers are reserved by work landing in any order: a store at the newest version that
    lacks a lower one gets it at the next upgrade, and the usual open sees the gap too."""
    store = open_hot_store(raw.url, raw.path)
    try:
        late = Migration(LATEST + 1, f"{LATEST + 1:04d}_late_table", "CREATE TABLE late (x INT);")
        newest = Migration(LATEST + 2, f"{LATEST + 2:04d}_newest", "CREATE TABLE newest (x INT);")
        first = upgrade(store, (*known_migrations(store.dialect), newest))
        assert first.applied == (newest.name,)
        report = upgrade(store, (*known_migrations(store.dialect), late, newest))
        assert report.applied == (late.name,) and report.after == LATEST + 2
        assert upgrade(store, (*known_migrations(store.dialect), late, newest)).applied == ()
    finally:
        store.close()
    assert sorted(v for v, _ in raw.versions())[-2:] == [LATEST + 1, LATEST + 2]


def test_workers_opening_a_fresh_store_at_once_migrate_it_once(raw: Raw) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_opener, args=(raw.url, str(raw.path))) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert raw.versions() == [(m.version, m.name) for m in known_migrations(raw.dialect)]


def test_a_store_made_before_codes_were_stored_is_refused(tmp_path: Path) -> None:
    """The one store no migration takes on (sql/migrations/sqlite/unupgradable.sql): its codes
    derive from offer ids, so they must not stay live."""
    path = tmp_path / "hot.sqlite"
    Raw("", path).script(
        "CREATE TABLE offers (offer_id TEXT PRIMARY KEY, code TEXT NOT NULL CHECK "
        "(substr(code, 1, length(offer_id) + 5) = 'SGR-' || upper(offer_id) || '-'));"
    )
    with pytest.raises(StoreUnavailable) as caught:
        open_hot_store("", path)
    text = str(caught.value)
    assert str(path) in text and "before offer codes were random" in text and "\n" not in text
    assert Raw("", path).rows("SELECT name FROM sqlite_master WHERE name = 'sessions'") == []


def test_sgr_migrate_says_what_it_applied(
    hot_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SGR_HOT_STORE_URL", hot_store_url)
    runner = CliRunner()
    first = runner.invoke(app, ["migrate", "--data-dir", str(tmp_path), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    dialect = "postgres" if hot_store_url else "sqlite"
    assert report["applied"] == [m.name for m in known_migrations(dialect)]
    assert report["before"] == 0 and report["after"] == LATEST
    again = runner.invoke(app, ["migrate", "--data-dir", str(tmp_path)])
    assert again.exit_code == 0 and f"up to date at version {LATEST}" in again.output


def test_sgr_migrate_refuses_a_newer_schema_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = Raw("", tmp_path / "hot.sqlite")
    open_hot_store("", raw.path).close()
    raw.script("INSERT INTO schema_migrations VALUES (99, '0099_future', '2027-01-01')")
    with pytest.raises(SystemExit) as exited:
        main(["migrate", "--data-dir", str(tmp_path)])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "schema version 99" in err and "Traceback" not in err


def test_both_dialects_number_their_migrations_alike() -> None:
    """One version means the same tables on both (a dialect needing nothing still has its file)."""
    sqlite = [(m.version, m.name) for m in known_migrations("sqlite")]
    assert sqlite == [(m.version, m.name) for m in known_migrations("postgres")]
    assert sqlite[0] == (1, "0001_initial")


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ("SELECT :a, :b_2", "SELECT %(a)s, %(b_2)s"),
        ("WHERE x = ANY(:ids::text[])", "WHERE x = ANY(%(ids)s::text[])"),
        ("SELECT a::int, '12:30', 'it''s :x'", "SELECT a::int, '12:30', 'it''s :x'"),
        ("WHERE e LIKE '%engine\\_%' ESCAPE '\\'", "WHERE e LIKE '%%engine\\_%%' ESCAPE '\\'"),
        ("-- up to :limit, 100%\nLIMIT :limit", "-- up to :limit, 100%%\nLIMIT %(limit)s"),
        ('SELECT "odd:name" FROM t /* :no %(x)s */', 'SELECT "odd:name" FROM t /* :no %%(x)s */'),
        ("SELECT 5 % 2, :n", "SELECT 5 %% 2, %(n)s"),
        ("SELECT x:y", "SELECT x:y"),
    ],
)
def test_named_parameters_become_pyformat_and_nothing_else_changes(
    named: str, expected: str
) -> None:
    assert pyformat(named) == expected


def test_every_shared_statement_runs_on_both_dialects(raw: Raw) -> None:
    """Each file of sql/hot (shared or a dialect's) at least prepares on each backend: a
    placeholder the conversion broke, or SQL one dialect lacks, fails here."""
    from stores.sqlfiles import sql_names

    store = open_hot_store(raw.url, raw.path)
    try:
        names = set(sql_names("hot")) | set(sql_names(f"hot/{store.dialect}"))
        for name in sorted(names - {"read_snapshot"}):
            text = store._text("hot", name)
            explain = "EXPLAIN " + _strip_comments(text)
            params = dict.fromkeys(_params(text), None)
            try:
                with store.transaction():
                    store._rows(explain, params)
            except (sqlite3.Error, psycopg.Error) as exc:
                pytest.fail(f"{name}: {exc}")
    finally:
        store.close()


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def _params(text: str) -> Iterator[str]:
    import re

    yield from re.findall(r"%\((\w+)\)s", text)
    yield from re.findall(r"(?<![\w:]):([A-Za-z_]\w*)", text)
