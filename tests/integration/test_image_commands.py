"""The worker image's environment, without Docker: a venv made as deploy/Dockerfile makes it
(`uv sync --locked --no-dev --no-editable` with the Dockerfile's extras), no redis-server on the
PATH. Every `sgr` command it offers starts (`--help`), the demo runs (fakeredis), and the
commands that need what the image lacks say so in one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (`make` installs it)")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    sync = next(
        line for line in dockerfile.splitlines() if "uv sync" in line and "--no-editable" in line
    )
    extras = re.findall(r"--extra (\w+)", sync)
    venv = tmp_path_factory.mktemp("image") / "venv"
    done = subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--no-editable", "--quiet"]
        + [a for e in extras for a in ("--extra", e)],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "hardlink"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SGR_", "VIRTUAL_ENV"))}
    return {**env, "PATH": str(venv / "bin"), "SGR_ENGINE": "policy", "HOME": str(venv.parent)}


def sgr(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(env["PATH"]) / "sgr"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_command_of_the_image_starts(image_env: dict[str, str], tmp_path: Path) -> None:
    listing = sgr(image_env, "--help", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    commands = re.findall(r"^  ([a-z][a-z-]+)\s", listing.stdout, re.M)
    assert {"worker", "setup-data", "demo", "report", "chaos", "bench", "bridge"} <= set(commands)
    # The pass-through commands import their tool (the test bench, the load tools) for --help;
    # the others import nothing before they run (the demo and the report run below).
    for command in ("report", "loadgen", "bench"):
        shown = sgr(image_env, command, "--help", cwd=tmp_path)
        assert shown.returncode == 0, (command, shown.stderr)
        assert "ModuleNotFoundError" not in shown.stdout + shown.stderr, command


@pytest.mark.slow
def test_the_demo_and_report_run_and_the_rest_say_what_is_missing(
    image_env: dict[str, str], tmp_path: Path
) -> None:
    assert sgr(image_env, "setup-data", "--customers", "20", cwd=tmp_path).returncode == 0
    ran = sgr(image_env, "demo", "--sessions", "5", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "fakeredis" in ran.stdout.strip().splitlines()[-1]
    report = sgr(image_env, "report", "--no-redis", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    for args, names in (
        (["chaos"], "redis-server"),
        (["bench", "--quick"], "redis-server"),
        (["report", "--no-redis", "--plot", "x.png"], "[bench]"),
    ):
        said = sgr(image_env, *args, cwd=tmp_path)
        assert said.returncode == 1, (args, said.stderr)
        assert said.stderr.count("\n") == 1 and names in said.stderr, (args, said.stderr)
