"""Versioned schema migrations of the hot store: numbered SQL files per dialect
(``sql/migrations/<dialect>/NNNN_name.sql``), a ``schema_migrations`` table of the versions
applied, run in one transaction under a lock at store open and by ``sgr migrate``.

Version 1 is the schema of the release before this runner, with ``IF NOT EXISTS``: a store that
release made (tables, no versions table) is adopted by recording version 1 and going on. A store
at a version newer than this code knows is refused in one line (``StoreUnavailable``). Why a
runner of our own and not a library: docs/migrations.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Protocol

from stores.base import StoreUnavailable
from stores.sqlfiles import dialect_sql, sql_names

SCHEMA_LOCK = "sgr:hot_pg:schema"  # the key of the release before, kept (see upgrade)
_FILE = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file's name without .sql, e.g. "0001_initial"
    text: str


@dataclass(frozen=True)
class MigrationReport:
    """What one run found and did: the versions before and after, the migrations applied."""

    where: str
    before: int
    after: int
    applied: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "before": self.before,
            "after": self.after,
            "applied": list(self.applied),
        }

    def line(self) -> str:
        if not self.applied:
            return f"hot store {self.where}: up to date at version {self.after}"
        return (
            f"hot store {self.where}: applied {', '.join(self.applied)} "
            f"(version {self.before} -> {self.after})"
        )


class MigrationTarget(Protocol):
    """What the runner needs of a store: its dialect, and the store's own primitives."""

    where: str
    dialect: ClassVar[str]

    def transaction(self) -> AbstractContextManager[Any]: ...
    def _lock(self, key: str) -> None: ...
    def _rows(self, text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def _write(self, text: str, params: dict[str, Any]) -> int: ...
    def _script(self, text: str) -> None: ...
    def _text(self, folder: str, name: str) -> str: ...


@cache
def known_migrations(dialect: str) -> tuple[Migration, ...]:
    """The dialect's migrations, by version: unique numbers, in order. A gap is allowed (a number
    reserved by work that lands later): a store lacking a version below its newest gets it at the
    next open."""
    found = []
    for name in sql_names(f"migrations/{dialect}"):
        match = _FILE.match(name)
        if match:
            text = dialect_sql("migrations", dialect, name)
            found.append(Migration(int(match["version"]), name, text))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or versions != sorted(versions) or 0 in versions:
        raise RuntimeError(f"sql/migrations/{dialect}: versions {versions} are not unique")
    return tuple(found)


def current_version(target: MigrationTarget) -> int:
    """The newest version applied to the store (0: none, or no versions table), read without a
    lock."""
    if not target._rows(target._text("migrations", "has_table")):
        return 0
    rows = target._rows(target._text("migrations", "versions"))
    return max((int(r["version"]) for r in rows), default=0)


def applied_versions(target: MigrationTarget) -> set[int]:
    """The versions applied to the store (none without a versions table), read without a lock."""
    if not target._rows(target._text("migrations", "has_table")):
        return set()
    return {int(r["version"]) for r in target._rows(target._text("migrations", "versions"))}


def _too_new(target: MigrationTarget, version: int, known: int) -> StoreUnavailable:
    return StoreUnavailable(
        f"hot store {target.where} has schema version {version}, newer than this worker knows "
        f"(up to {known}): run a worker of the release that made it"
    )


def upgrade(
    target: MigrationTarget, migrations: Sequence[Migration] | None = None
) -> MigrationReport:
    """Apply the store's missing migrations in one transaction under the migration lock (the
    store's ``_lock`` on a fixed key: PostgreSQL's advisory lock of the release before, so old and
    new workers starting together serialize; SQLite's write transaction is its own lock).
    Refuses a store newer than ``migrations`` and one that no migration can take on."""
    steps = tuple(known_migrations(target.dialect) if migrations is None else migrations)
    latest = steps[-1].version if steps else 0
    known = {step.version for step in steps}
    seen = applied_versions(target)
    if seen - known:
        raise _too_new(target, max(seen - known), latest)
    if known <= seen:  # the usual open: nothing to write, no lock taken
        return MigrationReport(target.where, latest, latest, ())
    applied: list[str] = []
    with target.transaction():
        target._lock(SCHEMA_LOCK)
        target._script(target._text("migrations", "table"))
        done = {int(r["version"]) for r in target._rows(target._text("migrations", "versions"))}
        before = max(done, default=0)
        if done - known:
            raise _too_new(target, max(done - known), latest)
        if not done:
            try:
                refusals = target._rows(target._text("migrations", "unupgradable"))
            except FileNotFoundError:
                refusals = []
            for row in refusals:
                raise StoreUnavailable(f"hot store {target.where}: {row['reason']}")
        record = target._text("migrations", "record")
        for step in steps:
            if step.version in done:
                continue
            target._script(step.text)
            target._write(record, {"version": step.version, "name": step.name, "now": _now()})
            applied.append(step.name)
    return MigrationReport(target.where, before, latest, tuple(applied))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
