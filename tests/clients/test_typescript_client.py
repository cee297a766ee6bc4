"""The TypeScript client's own test suite (clients/typescript/test: models, prediction, attribution, jobs,
inspection, robustness history) against a live server.

Node and npm are required: without them this test fails rather than skips, because CI must run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from glassbox.demo.shapes import generate
from PIL import Image
from support.model_repository import monitoring_section, write_model_version
from support.servers import RunningServer

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
MONITORING = monitoring_section(images=8, epsilons=(0.0, 1 / 255))
"""What robustness.test.ts expects in the history: the first 8 images, FGSM at ε = 0 and 1/255."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; the TypeScript client test needs Node.js 20+ and npm")
    return path


@pytest.fixture(scope="module")
def npm() -> str:
    _tool("node")
    npm = _tool("npm")
    if not (PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True, timeout=600)
    return npm


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    """A server whose model `shapes` has the demo named sets and a robustness history of one record:
    the [monitoring] evaluation that robustness.test.ts expects, run to its end before the suite starts
    (the monitor thread is off, so the test drives it and nothing runs behind the suite's back)."""
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "shapes", "1", extra_toml=MONITORING)
    shutil.copytree(ROOT / "models" / "shapes" / "datasets", root / "shapes" / "datasets")
    running = start_server(model_repository=root, robustness={"monitoring": False})
    assert running.server.monitor.wait_idle(timeout=120)
    assert len(running.server.history.records("shapes", "", 10)) == 1
    return running


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "shape.png"
    pixels = generate(1, seed=11).images[0].permute(1, 2, 0).numpy()
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
    return path


def test_typescript_client_suite_passes_against_a_live_server(
    npm: str, running: RunningServer, image_file: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "GLASSBOX_ADDRESS": running.address,
        "GLASSBOX_TEST_MODEL": "shapes",
        "GLASSBOX_TEST_IMAGE": str(image_file),
        "GLASSBOX_TEST_MONITORING": "1",
    }
    done = subprocess.run([npm, "test"], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=300)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    passed = re.search(r"^# pass (\d+)$", report, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", report, re.MULTILINE)
    assert passed and failed, report
    assert int(passed.group(1)) >= 15 and int(failed.group(1)) == 0, report
    assert "# SKIP" not in report, "every suite must run here: " + report

    example = subprocess.run(
        ["node", str(PACKAGE / "dist" / "examples" / "predict.js"), str(image_file), "shapes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert example.returncode == 0, example.stdout + example.stderr
    assert (tmp_path / "overlay.png").read_bytes()[:4] == b"\x89PNG"
