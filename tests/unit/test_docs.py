"""The README is the user's manual: every setting is in its configuration table."""

from __future__ import annotations

from pathlib import Path

from worker.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [
        f"SGR_{n.upper()}" for n in Settings.model_fields if f"`SGR_{n.upper()}`" not in README
    ]
    assert missing == []


def test_quick_start_is_two_make_commands() -> None:
    assert "make demo" in README and "make test" in README
