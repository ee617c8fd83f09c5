"""The deploy files parse: the systemd unit by systemd's own checker (where it is installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "sgr-worker@.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_worker_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    sgr = Path(sys.executable).with_name("sgr")
    text = UNIT.read_text().replace("/opt/sgr/.venv/bin/sgr", str(sgr))
    text = text.replace("EnvironmentFile=/etc/sgr/", "EnvironmentFile=-/etc/sgr/")
    unit = tmp_path / "sgr-worker@.service"
    unit.write_text(text)
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "sgr-worker" not in out.stderr, out.stderr  # no warning about the unit itself


def test_env_example_sets_only_documented_settings() -> None:
    from worker.settings import Settings

    names = {f"SGR_{name.upper()}" for name in Settings.model_fields}
    example = UNIT.with_name("sgr.env.example").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in example if line and not line.startswith("#")}
    assert keys and keys <= names, keys - names
