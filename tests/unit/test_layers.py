"""The import-linter layers name every module of the project: a new module outside them would
escape the layering that `make lint` checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules() -> set[str]:
    found = set()
    for package in ("worker", "stores", "producers", "testbench"):
        found.add(package)
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.add(name.removesuffix(".__init__"))
    return found


def layered() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    # the project's layers (a contract with ``containers`` layers the inside of one package)
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers" and "containers" not in c]
    return [name.strip() for layer in layers for name in layer.split("|")]


def covered(module: str, names: list[str]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def test_every_module_is_in_a_layer() -> None:
    names = layered()
    packages = {"worker"}  # the root package holds only the layers themselves
    missing = sorted(m for m in modules() - packages if not covered(m, names))
    assert missing == []


def test_the_layers_name_only_modules_that_exist() -> None:
    mods = modules()
    assert [n for n in layered() if n not in mods] == []
