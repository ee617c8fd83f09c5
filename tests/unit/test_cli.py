"""The `sgr` commands that manage the data folder, run as a user runs them (typer's runner)."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from worker.cli import app

runner = CliRunner()


def sgr(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_setup_data_then_history_show_sync_and_a_missing_snapshot(tmp_path: Path) -> None:
    code, out = sgr("setup-data", "--data-dir", str(tmp_path), "--customers", "40")
    assert code == 0, out
    assert (tmp_path / "history.sqlite").exists() and "40 customers" in out

    code, out = sgr("history", "show", "--data-dir", str(tmp_path))
    assert code == 0 and "'stale': False" in out and "'customers': 40" in out

    later = os.stat(tmp_path / "cold.duckdb").st_mtime_ns + 10**9
    os.utime(tmp_path / "cold.duckdb", ns=(later, later))  # the cold store was rebuilt
    code, out = sgr("history", "show", "--data-dir", str(tmp_path))
    assert code == 0 and "'stale': True" in out

    code, out = sgr("history", "sync", "--data-dir", str(tmp_path))
    assert code == 0 and "40 customers" in out
    code, out = sgr("history", "show", "--data-dir", str(tmp_path))
    assert "'stale': False" in out

    (tmp_path / "history.sqlite").unlink()
    code, out = sgr("history", "show", "--data-dir", str(tmp_path))
    assert code == 1 and "sgr history sync" in out


def test_history_sync_without_a_cold_store_says_what_to_run(tmp_path: Path) -> None:
    code, out = sgr("history", "sync", "--data-dir", str(tmp_path))
    assert code == 1 and "sgr setup-data" in out
