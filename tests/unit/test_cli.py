"""The `sgr` commands that manage the data folder, run as a user runs them (typer's runner)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from worker.cli import app
from worker.cli.app import main

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


def test_a_bad_option_value_is_named_with_its_value(capsys: Any) -> None:
    """The console script's usage errors say which option and which value, exit status 2."""
    for args, value in (
        (["eval", "--carts", "abc"], "'abc'"),
        (["eval", "--carts=0"], "'0'"),
        (["eval", "--concurrency", "-3"], "'-3'"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(args)
        err = capsys.readouterr().err
        assert stop.value.code == 2, err
        assert f"'{args[1].split('=')[0]}'" in err and value in err, err
        assert "Traceback" not in err


def test_the_console_script_keeps_exit_codes(capsys: Any) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--llm-url", "http://127.0.0.1:1/v1", "--carts", "1"])
    assert stop.value.code == 1
    assert capsys.readouterr().err.startswith("sgr: error: no OpenAI-compatible server")
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
