"""Settings that refuse mistakes: an unknown ``SGR_`` variable is refused naming the closest
setting (exit 2), a malformed URL is one line naming its variable without its secret, read-only
commands and a worker started too early create no folder and no store, ``sgr setup-data`` run
again is a success. The commands run as a user runs them (the console script's ``main``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from stores.base import StoreMissing
from worker.cli.app import main
from worker.settings import (
    NOT_SETTINGS,
    NOT_SETTINGS_PREFIXES,
    RETIRED,
    Settings,
    SettingsError,
    UnknownSetting,
    load_settings,
    unknown_variables,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process with no SGR_ setting but the test suite's own."""
    for key in list(os.environ):
        if key.upper().startswith("SGR_") and not key.upper().startswith(NOT_SETTINGS_PREFIXES):
            monkeypatch.delenv(key)


def run(capsys: Any, *args: str) -> tuple[int, str, str]:
    """``sgr ARGS`` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    captured = capsys.readouterr()
    code = stop.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


# ------------------------------------------------------------------ unknown SGR_ variables


def test_a_misspelt_variable_names_the_setting_it_resembles() -> None:
    found = unknown_variables({"SGR_HOT_STORE_URI": "postgresql://x", "PATH": "/bin"})
    assert found == ["SGR_HOT_STORE_URI is not a setting: did you mean SGR_HOT_STORE_URL?"]
    assert unknown_variables({"sgr_redis_ulr": "x"}) == [
        "sgr_redis_ulr is not a setting: did you mean SGR_REDIS_URL?"
    ]
    assert unknown_variables({"SGR_BANANA": "1"}) == [
        "SGR_BANANA is not a setting: no setting has a similar name"
    ]


def test_settings_the_suite_and_the_scripts_use_are_not_refused() -> None:
    fields = {f"SGR_{n.upper()}": "1" for n in Settings.model_fields}
    allowed = {name: "1" for name in NOT_SETTINGS}
    tests = {"SGR_TEST_REDIS_URL": "redis://x", "SGR_TEST_POSTGRES_URL": "postgresql://x"}
    assert unknown_variables({**fields, **allowed, **tests}) == []


def test_a_retired_setting_says_what_replaced_it() -> None:
    (line,) = unknown_variables({"SGR_CODE_SECRET": "s3cret-value"})
    assert line.startswith("SGR_CODE_SECRET is no longer a setting") and "s3cret" not in line
    assert set(RETIRED).isdisjoint(f"SGR_{n.upper()}" for n in Settings.model_fields)


def test_load_settings_refuses_an_unknown_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGR_HOT_STORE_URI", "postgresql://sgr:pw-not-shown@db/sgr")
    with pytest.raises(UnknownSetting) as info:
        load_settings()
    assert "did you mean SGR_HOT_STORE_URL?" in str(info.value)
    assert "pw-not-shown" not in str(info.value) and info.value.code == 2


def test_sgr_refuses_a_misspelt_variable_in_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("SGR_HOT_STORE_URI", "postgresql://sgr:pw-not-shown@db/sgr")
    for command in (["status", "--data-dir", str(tmp_path)], ["worker", "--burst"]):
        code, out, err = run(capsys, *command)
        assert code == 2, err
        assert err.count("\n") == 1 and "SGR_HOT_STORE_URL" in err, err
        assert "pw-not-shown" not in err + out and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_every_sgr_variable_the_repository_reads_is_known() -> None:
    """A new ``SGR_`` variable read anywhere (code, scripts, deploy files) is a setting or listed
    in NOT_SETTINGS: otherwise every process that sees it would refuse to start."""
    known = {f"SGR_{n.upper()}" for n in Settings.model_fields} | set(NOT_SETTINGS) | set(RETIRED)
    examples = {"SGR_HOT_STORE_URI"}  # the typo the docs and these tests show being refused
    constants = {"SGR_IMAGE"}  # tests/unit/test_deploy_fleet.py: a Python name, not a variable
    pattern = re.compile(r"\bSGR_[A-Z][A-Z0-9_]*[A-Z0-9]\b(?![_*])")
    unknown: dict[str, str] = {}
    for folder in ("worker", "stores", "producers", "testbench", "tests", "deploy", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".sh", ".yaml", ".yml", ".md", ""} or not path.is_file():
                continue
            if path == Path(__file__).resolve():  # this file shows wrong names on purpose
                continue
            for name in pattern.findall(path.read_text(errors="replace")):
                if name in known | examples | constants or name.startswith(NOT_SETTINGS_PREFIXES):
                    continue
                unknown.setdefault(name, str(path.relative_to(ROOT)))
    for extra in ("Makefile", ".ci/run", "README.md"):
        for name in pattern.findall((ROOT / extra).read_text()):
            if name not in known | examples and not name.startswith(NOT_SETTINGS_PREFIXES):
                unknown.setdefault(name, extra)
    assert not unknown, unknown


# ------------------------------------------------------------------------ malformed URLs


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SGR_REDIS_URL", "127.0.0.1:6379", "scheme must be one of redis://"),
        ("SGR_REDIS_URL", "redis://:hunter2-secret@127.0.0.1:63x9/0", "cast to integer"),
        ("SGR_REDIS_URL", "redis://:hunter2-secret@127.0.0.1:6379/zero", "database"),
        ("SGR_REDIS_URL", "redis://:hunter2-secret@/0", "no host"),
        ("SGR_LLM_URL", "127.0.0.1:8000/v1", "scheme must be one of http://, https://"),
        ("SGR_LLM_URL", "http://u:hunter2-secret@h:99999/v1", "out of range"),
        ("SGR_HOT_STORE_URL", "postgresql://sgr:hunter2-secret@db:54x2/sgr", "cast to integer"),
    ],
)
def test_a_malformed_url_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert f"{variable}: " in text and says in text and "\n" not in text, text
    assert "hunter2-secret" not in text


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:pw@redis:6379/0",
        "rediss://user:pw@cache.example.com:6380",
        "unix:///run/redis.sock",
        "redis://[::1]:6379/2",
    ],
)
def test_well_formed_redis_urls_are_taken(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("SGR_REDIS_URL", url)
    assert load_settings().redis_url == url


@pytest.mark.parametrize(
    "url", ["postgresql://sgr:pw@db:5432/sgr", "postgresql:///sgr?host=/run/postgresql", ""]
)
def test_well_formed_hot_store_urls_are_taken(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("SGR_HOT_STORE_URL", url)
    assert load_settings().hot_store_url.get_secret_value() == url


def test_sgr_names_a_malformed_redis_url_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("SGR_REDIS_URL", "redis://:hunter2-secret@127.0.0.1:port/0")
    code, out, err = run(capsys, "dead-letters")
    assert code == 1 and err.count("\n") == 1, err
    assert "SGR_REDIS_URL" in err and "hunter2-secret" not in err + out
    assert "unexpected" not in err and "Traceback" not in err


# ----------------------------------------------------- nothing created where nothing was


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["codes", "verify", "SGR-7KQX-M4TZ-W9HC"],
        ["codes", "redeem", "SGR-7KQX-M4TZ-W9HC", "--any-user"],
        ["report", "--no-redis"],
        ["report", "lift"],
        ["metrics", "serve", "--once"],
        ["history", "show"],
        ["history", "sync"],
        ["reap"],
        ["dead-letters", "requeue", "e1"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_typo_in_the_data_folder_creates_nothing_and_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "dtaa"
    monkeypatch.setenv("SGR_DATA_DIR", str(typo))
    monkeypatch.setenv("SGR_REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    code, _out, err = run(capsys, *command)
    assert code == 1, err
    assert err.count("\n") == 1 and str(typo) in err, err
    assert "SGR_DATA_DIR" in err, err
    assert not typo.exists() and list(tmp_path.iterdir()) == []


def test_read_only_commands_create_no_store_in_an_empty_folder(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("SGR_REDIS_URL", "redis://127.0.0.1:1/0")
    for command in (["status"], ["codes", "verify", "SGR-7KQX-M4TZ-W9HC"], ["report"]):
        code, _out, err = run(capsys, *command, "--data-dir", str(tmp_path))
        assert code == 1 and "sgr setup-data" in err and str(tmp_path / "hot.sqlite") in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_worker_started_before_setup_data_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    from worker.jobs import start_process

    monkeypatch.setenv("SGR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SGR_ENGINE", "policy")
    monkeypatch.setenv("SGR_REDIS_URL", "redis://127.0.0.1:1/0")
    code, _out, err = run(capsys, "worker", "--burst")
    assert code == 1 and "sgr setup-data" in err and err.count("\n") == 1, err
    with pytest.raises(StoreMissing):  # the stock `rq worker`'s first job starts it so
        start_process(load_settings())
    assert list(tmp_path.iterdir()) == []
    # ... and setup-data then sets the folder up as if the worker had never run.
    code, out, err = run(capsys, "setup-data", "--data-dir", str(tmp_path), "--customers", "20")
    assert code == 0, err
    assert {"cold.duckdb", "history.sqlite", "hot.sqlite"} <= {p.name for p in tmp_path.iterdir()}


def test_the_api_started_before_setup_data_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """`sgr api` on a data folder that is not there (a typo) or holds no store creates neither:
    an empty store of its own would answer 404 for every outcome the workers write elsewhere."""
    from worker.runtime import build_api_runtime

    typo = tmp_path / "dtaa"
    monkeypatch.setenv("SGR_REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    for folder in (typo, tmp_path):
        monkeypatch.setenv("SGR_DATA_DIR", str(folder))
        with pytest.raises(StoreMissing, match="sgr setup-data"):
            build_api_runtime(load_settings())
        assert not typo.exists() and list(tmp_path.iterdir()) == []
    code, _out, err = run(capsys, "api", "--port", "1")  # refused before it listens
    assert code == 1 and "sgr setup-data" in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- setup-data again


def test_setup_data_twice_says_already_set_up_and_exits_0(capsys: Any, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    code, out, err = run(capsys, "setup-data", "--data-dir", str(folder), "--customers", "20")
    assert code == 0 and "cold store" in out, err
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix != ".tmp"}

    code, out, err = run(capsys, "setup-data", "--data-dir", str(folder), "--customers", "20")
    assert code == 0 and "already set up" in " ".join(out.split()), out + err
    for name in ("cold.duckdb", "history.sqlite"):
        assert (folder / name).stat().st_mtime_ns == stamps[name], name

    code, out, err = run(capsys, "setup-data", "--data-dir", str(folder), "--customers", "30")
    assert "30 customers" not in out  # again: the existing history is kept, not regenerated
    code, out, err = run(
        capsys, "setup-data", "--data-dir", str(folder), "--customers", "30", "--force"
    )
    assert code == 0 and "30 customers" in out and "hot store" in out, out + err


def test_setup_data_makes_only_what_is_missing_and_keeps_the_hot_store(
    capsys: Any, tmp_path: Path
) -> None:
    import sqlite3

    from stores.hot import open_hot_store

    open_hot_store("", tmp_path / "hot.sqlite").close()  # a hot store, no cold store
    with sqlite3.connect(tmp_path / "hot.sqlite") as db:
        db.execute("CREATE TABLE kept (x)")
        db.execute("INSERT INTO kept VALUES (1)")
    code, out, err = run(capsys, "setup-data", "--data-dir", str(tmp_path), "--customers", "20")
    assert code == 0 and "cold store" in out and "snapshot" in out, err
    assert "hot store" not in out  # it was there: kept, not replaced
    with sqlite3.connect(tmp_path / "hot.sqlite") as db:
        assert db.execute("SELECT x FROM kept").fetchall() == [(1,)]
