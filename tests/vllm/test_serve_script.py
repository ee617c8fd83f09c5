"""serve.sh as a careless user runs it: wrong settings get one clear line and exit 1 at once,
before any server starts (needs the vLLM venv, which the tier installs)."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.vllm.conftest import DEPLOY

pytestmark = pytest.mark.vllm


def serve(tmp_path: object, **env: str) -> subprocess.CompletedProcess[str]:
    run = {
        **os.environ,
        "VLLM_PIDFILE": f"{tmp_path}/vllm.pid",
        "VLLM_LOGFILE": f"{tmp_path}/vllm.log",
        "HF_HUB_OFFLINE": "0",
        **env,
    }
    return subprocess.run(
        ["bash", str(DEPLOY / "serve.sh"), "--background"],
        env=run,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def hub_answers() -> bool:
    try:
        urllib.request.urlopen("https://huggingface.co", timeout=5)
    except OSError:
        return False
    return True


def test_a_hub_model_without_the_hub_is_refused_with_what_to_do(tmp_path: object) -> None:
    done = serve(tmp_path, MODEL="no-such-org/no-such-model", PORT="0")
    assert done.returncode == 1  # with the hub: vLLM finds no such model and exits
    if not hub_answers():
        assert "MODEL=no-such-org/no-such-model is not a folder here" in done.stderr
        assert "unset MODEL" in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_refused(tmp_path: object, busy_port: int) -> None:
    done = serve(tmp_path, PORT=str(busy_port))
    assert done.returncode == 1
    assert f"port {busy_port} on 127.0.0.1 is already in use" in done.stderr
