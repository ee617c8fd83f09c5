"""``sgr history sync``: copy the cold store's customer features (DuckDB) into the snapshot that
workers read (SQLite). The one module that reads the cold store to write the snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from stores.cold import export_history
from stores.history import SnapshotInfo, write_snapshot

log = structlog.get_logger("sgr.history")


def sync_snapshot(cold_db: Path | str, snapshot: Path | str) -> SnapshotInfo:
    """Copy the cold store's customer features into a fresh snapshot (``sgr history sync``)."""
    cold_db = Path(cold_db)
    mtime = os.stat(cold_db).st_mtime_ns
    info = write_snapshot(snapshot, export_history(cold_db), cold_db, mtime)
    log.info("history_snapshot_written", snapshot=str(info.path), customers=info.customers)
    return info
