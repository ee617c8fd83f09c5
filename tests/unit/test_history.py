"""The history snapshot on real files: same answers as DuckDB, replaced atomically, staleness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producers.synthetic import customers
from stores.cold import ColdStore, export_history, write_history
from stores.history import HistorySnapshot, snapshot_info
from stores.sync import sync_snapshot
from tests.conftest import NOW


class Ticks:
    """A settable monotonic clock for the snapshot's re-check interval."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_snapshot_answers_exactly_as_duckdb_for_every_customer(data_dir: Path) -> None:
    cold = ColdStore(data_dir / "cold.duckdb")
    snap = HistorySnapshot(data_dir / "history.sqlite")
    ids = [row[0] for row in export_history(data_dir / "cold.duckdb")]
    assert len(ids) == 500
    for user_id in [*ids, "never-seen", ""]:
        assert snap.history(user_id) == cold.history(user_id), user_id
    assert snap.info.customers == 500


def test_sync_replaces_the_file_and_a_reader_switches_within_its_interval(tmp_path: Path) -> None:
    cold_db, snap_db = tmp_path / "cold.duckdb", tmp_path / "history.sqlite"
    write_history(cold_db, customers(10, seed=1, now=NOW))
    sync_snapshot(cold_db, snap_db)
    ticks = Ticks()
    reader = HistorySnapshot(snap_db, check_every_s=1.0, monotonic=ticks)
    before = reader.history("u000003")
    assert before is not None

    write_history(cold_db, customers(10, seed=2, now=NOW))  # the cold store is rebuilt
    assert reader.info.stale()
    sync_snapshot(cold_db, snap_db)
    assert reader.history("u000003") == before  # not yet re-checked: the old snapshot
    ticks.t = 1.5
    after = reader.history("u000003")
    assert after == ColdStore(cold_db).history("u000003")
    assert after != before
    assert not reader.info.stale()
    assert not list(tmp_path.glob(".history.sqlite.*"))  # no temporary file left behind


def test_snapshot_info_reports_staleness_and_a_missing_snapshot(tmp_path: Path) -> None:
    cold_db = tmp_path / "cold.duckdb"
    write_history(cold_db, customers(5, seed=1, now=NOW))
    assert snapshot_info(tmp_path / "history.sqlite") is None
    info = sync_snapshot(cold_db, tmp_path / "history.sqlite")
    assert info.customers == 5 and not info.stale()
    os.utime(cold_db, ns=(info.source_mtime_ns + 10**9, info.source_mtime_ns + 10**9))
    again = snapshot_info(tmp_path / "history.sqlite")
    assert again is not None and again.stale()


def test_missing_snapshot_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sgr history sync"):
        HistorySnapshot(tmp_path / "history.sqlite")


def test_a_worker_makes_the_snapshot_when_a_data_folder_has_none(tmp_path: Path) -> None:
    """An older data folder (cold store only): the worker's wiring syncs once instead of failing."""
    from worker.runtime import open_history
    from worker.settings import Settings

    write_history(tmp_path / "cold.duckdb", customers(20, seed=4, now=NOW))
    source = open_history(Settings(data_dir=tmp_path))
    assert isinstance(source, HistorySnapshot)
    assert (tmp_path / "history.sqlite").exists()
    assert source.history("u000002") == ColdStore(tmp_path / "cold.duckdb").history("u000002")


def test_making_the_missing_snapshot_does_not_load_duckdb_into_the_worker(tmp_path: Path) -> None:
    """The sync runs in a child process: the worker's own memory stays free of DuckDB."""
    import subprocess
    import sys

    write_history(tmp_path / "cold.duckdb", customers(20, seed=4, now=NOW))
    probe = (
        "import sys; from worker.runtime import open_history; from worker.settings import Settings; "
        f"open_history(Settings(data_dir={str(tmp_path)!r})); print('duckdb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"  # (structlog may print before it)
    assert (tmp_path / "history.sqlite").exists()
