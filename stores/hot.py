"""Which hot store a process opens: the one place a backend is chosen (``SGR_HOT_STORE_URL``).

Empty: the SQLite file in the data folder (one host); ``sqlite:///PATH``: that SQLite file;
``postgresql://...`` (or ``postgres://``, or libpq's ``host=... dbname=...``): PostgreSQL, shared by a fleet of hosts. A new backend
is one file in this package (its primitives: ``stores/hotstore.py``) and one branch here; each
is imported only when chosen.
"""

from __future__ import annotations

import re
from pathlib import Path

from stores.base import StoreConfigError
from stores.hotstore import SqlHotStore

# libpq's key/value form (``host=db port=5432 user=sgr dbname=sgr``), which psycopg accepts too
_KEY_VALUE_DSN = re.compile(r"^\s*[a-z_]+\s*=", re.ASCII)


def open_hot_store(
    url: str, default_path: Path, *, migrate: bool = True, create: bool = True
) -> SqlHotStore:
    """Open the hot store at ``url`` (``sqlite:///path``, ``postgresql://...``, or empty for
    ``default_path``), its schema migrated to this release's version unless ``migrate`` is
    False (``sgr migrate`` then calls ``migrate()`` itself, to report what it applied). Without
    ``create``, a SQLite file that does not exist raises StoreMissing (nothing is made)."""
    if url.startswith(("postgresql://", "postgres://")) or _KEY_VALUE_DSN.match(url):
        from stores.postgres import PostgresHotStore  # psycopg is loaded only when chosen

        return PostgresHotStore(url, migrate=migrate)
    from stores.sqlite import SqliteHotStore

    if not url:
        return SqliteHotStore(default_path, migrate=migrate, create=create)
    if url.startswith("sqlite:///"):
        return SqliteHotStore(Path(url.removeprefix("sqlite:///")), migrate=migrate, create=create)
    accepted = "empty, sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
    if "://" not in url:  # a bare path or other text: it may hold a password
        raise StoreConfigError(f"SGR_HOT_STORE_URL: not a URL ({accepted})")
    scheme = url.split("://", 1)[0][:20]
    raise StoreConfigError(f"SGR_HOT_STORE_URL: unsupported scheme {scheme!r} ({accepted})")
