"""The README is the user's manual and docs/ its chapters: every setting is in the generated
configuration reference, which equals what the settings make of it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from worker.settings import Settings
from worker.settingsdoc import render, undocumented

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [
        f"SGR_{n.upper()}"
        for n in Settings.model_fields
        if f"`SGR_{n.upper()}`" not in CONFIGURATION
    ]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    assert undocumented() == []


def test_the_committed_configuration_reference_is_the_generated_one() -> None:
    assert render() == CONFIGURATION, "run: uv run sgr docs config --output docs/configuration.md"


def test_the_reference_reads_the_class_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGR_QUEUE", "someone-elses-queue")
    monkeypatch.setenv("SGR_LLM_API_KEY", "sk-do-not-print-me")
    monkeypatch.setenv("SGR_HOT_STORE_URL", "postgresql://sgr:hunter2@db/sgr")
    text = render()
    assert text == CONFIGURATION
    for secret in ("someone-elses-queue", "sk-do-not-print-me", "hunter2"):
        assert secret not in text


def test_the_reference_keeps_the_settings_sections() -> None:
    rules = CONFIGURATION.index("\n## Business rules\n")
    delivery = CONFIGURATION.index("\n## Delivery\n")
    assert rules < CONFIGURATION.index("| `SGR_MIN_CART_VALUE` |") < delivery
    assert delivery < CONFIGURATION.index("| `SGR_JOB_TIMEOUT_S` |")


def test_quick_start_is_two_make_commands() -> None:
    assert "make demo" in README and "make test" in README


# --- the README as a manual --------------------------------------------------------------------
PACKAGES = ("worker", "stores", "producers", "testbench")


def _map_rows() -> list[str]:
    start = README.index("## Module map")
    end = README.index("\n## ", start + 1)
    return [line for line in README[start:end].splitlines() if line.startswith("| ")]


def _modules() -> list[Path]:
    found = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    # An empty __init__.py only makes a package: nothing to say about it.
    return sorted(p for p in found if p.name != "__init__.py" or p.read_text(encoding="utf-8"))


def test_the_readme_is_at_most_250_lines() -> None:
    assert len(README.splitlines()) <= 250


def test_the_module_map_covers_every_module() -> None:
    rows = _map_rows()
    missing = []
    for path in _modules():
        folder = f"`{path.parent.relative_to(ROOT).as_posix()}/`"
        if not any(folder in row and f"`{path.name}`" in row for row in rows):
            missing.append(path.relative_to(ROOT).as_posix())
    assert missing == []


def test_the_module_map_names_only_modules_that_exist() -> None:
    absent = []
    for row in _map_rows()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        folder = cells[1].strip("`")
        for name in re.findall(r"`([A-Za-z_]+\.py)`", cells[2]):
            if not (ROOT / folder / name).is_file():
                absent.append(folder + name)
    assert absent == []


def _docs() -> dict[str, str]:
    texts = {"README.md": README}
    for path in sorted((ROOT / "docs").glob("*.md")):
        texts[f"docs/{path.name}"] = path.read_text(encoding="utf-8")
    return texts


def test_every_link_into_docs_resolves() -> None:
    broken = []
    for name, text in _docs().items():
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text):
            if not (base / target).resolve().is_file():
                broken.append(f"{name}: {target}")
    assert broken == []


def test_the_readme_links_every_chapter() -> None:
    chapters = [
        "contract.md",
        "rules.md",
        "configuration.md",
        "operations.md",
        "negotiation.md",
        "performance.md",
        "llm.md",
        "extending.md",
    ]
    assert [c for c in chapters if f"(docs/{c}" not in README] == []


def _sgr_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip().rstrip("\\").strip()
            if line.startswith("uv run sgr "):
                lines.append(line.removeprefix("uv run sgr "))
    return lines


def test_every_sgr_command_in_the_manual_exists_with_its_options() -> None:
    """Each `uv run sgr ...` line of a bash block names a real command and only its options."""
    import typer.main

    from worker.cli import app

    root = typer.main.get_command(app)
    wrong, checked = [], 0
    for name, text in _docs().items():
        for line in _sgr_lines(text):
            checked += 1
            words = shlex.split(line.replace("...", "x"))
            command: Any = root  # typer's own click: groups have .commands
            while words and words[0] in getattr(command, "commands", {}):
                command = command.commands[words.pop(0)]
            if command is root:
                wrong.append(f"{name}: sgr {line}: no such command")
                continue
            if command.context_settings.get("ignore_unknown_options"):
                continue  # passed through to a testbench module's own parser
            known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for word in words:
                option = word.strip("[]").split("=", 1)[0]
                if option.startswith("--") and option not in known | {"--help", "--debug"}:
                    wrong.append(f"{name}: sgr {line}: no option {option}")
    assert checked >= 20 and wrong == []
