"""SQL lives in files under ``sql/``, found relative to this package, never the working directory."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Installed wheel: stores/sql; source checkout / editable install: <repo>/sql.
_ROOTS = (_HERE / "sql", _HERE.parent / "sql")


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``, e.g. ``sql("hot/upsert_session")`` (read once per process)."""
    for root in _ROOTS:
        path = root / f"{name}.sql"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no SQL file {name}.sql under {', '.join(map(str, _ROOTS))}")
