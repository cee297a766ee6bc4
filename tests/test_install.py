"""The install path a newcomer meets: platform markers, the install stamp and `make serve ARGS=...`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = [
    ("Linux", "x86_64", "onnxruntime-gpu"),
    ("Windows", "AMD64", "onnxruntime-gpu"),
    ("Linux", "aarch64", "onnxruntime"),
    ("Darwin", "arm64", "onnxruntime"),
    ("Darwin", "x86_64", "onnxruntime"),
    ("Windows", "ARM64", "onnxruntime"),
]


@pytest.mark.parametrize(("system", "machine", "expected"), PLATFORMS)
def test_exactly_one_onnxruntime_per_platform(system: str, machine: str, expected: str) -> None:
    """onnxruntime-gpu only where it publishes wheels; the CPU build everywhere else."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    environment = {"platform_system": system, "platform_machine": machine}
    chosen = [
        requirement.name
        for requirement in map(Requirement, dependencies)
        if requirement.name.startswith("onnxruntime")
        and (requirement.marker is None or requirement.marker.evaluate(environment))
    ]
    assert chosen == [expected]


def _make(*arguments: str, cwd: Path) -> str:
    """What `make -n` would run when a user types it (not with the flags of a `make test` around us)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_passes_args_and_installs_only_when_the_project_files_change(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "clients/python").mkdir(parents=True)
    shutil.copy(ROOT / "clients/python/pyproject.toml", tmp_path / "clients/python/pyproject.toml")
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").touch()

    fresh = _make("serve", "ARGS=--model-repository-poll-seconds 5", cwd=tmp_path)
    assert "pip install  -e clients/python -e ." in fresh
    assert "--quiet" not in fresh
    assert fresh.strip().endswith("--model-repository-poll-seconds 5")

    (venv / ".installed").touch()
    again = _make("serve", cwd=tmp_path)
    assert "pip install" not in again

    cpu = _make("serve", "TORCH=cpu", "-B", cwd=tmp_path)
    assert "pip install --extra-index-url https://download.pytorch.org/whl/cpu" in cpu
