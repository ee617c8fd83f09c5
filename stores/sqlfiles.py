"""SQL lives in files under ``sql/``, found relative to this package, never the working directory.

Hot-store statements are written once, with ``:name`` parameters (SQLite's own style), in
``sql/hot/NAME.sql``; a dialect whose SQL really differs has ``sql/hot/<dialect>/NAME.sql``, which
wins. ``dialect_sql`` finds the file and converts the parameters for a driver that wants
``%(name)s`` (psycopg): the one conversion, in ``pyformat``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Installed wheel: stores/sql; source checkout / editable install: <repo>/sql.
_ROOTS = (_HERE / "sql", _HERE.parent / "sql")

# What a statement holds, left to right: text that no parameter can be in (quoted strings and
# identifiers, comments, PostgreSQL's `::` cast), a `:name` parameter, or a bare percent sign.
_TOKENS = re.compile(
    r"""(?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::)"""
    r"""|(?<![\w:]):(?P<name>[A-Za-z_]\w*)"""
    r"""|(?P<percent>%)""",
    re.DOTALL,
)


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``, e.g. ``sql("hot/upsert_session")`` (read once per process)."""
    for root in _ROOTS:
        path = root / f"{name}.sql"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no SQL file {name}.sql under {', '.join(map(str, _ROOTS))}")


def sql_names(folder: str) -> list[str]:
    """The names (without ``.sql``) of the files in ``sql/<folder>``, sorted; none if no such
    folder."""
    for root in _ROOTS:
        path = root / folder
        if path.is_dir():
            return sorted(p.stem for p in path.glob("*.sql"))
    return []


def pyformat(text: str) -> str:
    """``text`` with ``:name`` parameters as ``%(name)s`` and every other ``%`` doubled (psycopg
    reads ``%`` everywhere, inside strings and comments too); casts (``::``), strings and
    comments keep their text."""

    def convert(match: re.Match[str]) -> str:
        if match["name"]:
            return f"%({match['name']})s"
        if match["percent"]:
            return "%%"
        return match["quoted"].replace("%", "%%")

    return _TOKENS.sub(convert, text)


@cache
def dialect_sql(folder: str, dialect: str, name: str, style: str = "named") -> str:
    """``sql/<folder>/<dialect>/<name>.sql`` if the dialect has its own, else the shared
    ``sql/<folder>/<name>.sql``; in ``style`` ``"named"`` (``:name``) or ``"pyformat"``."""
    try:
        text = sql(f"{folder}/{dialect}/{name}")
    except FileNotFoundError:
        text = sql(f"{folder}/{name}")
    return pyformat(text) if style == "pyformat" else text
