"""glassbox-client installs and runs on its own: no torch, no server package."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from support.model_repository import write_model_version
from support.servers import RunningServer

ROOT = Path(__file__).resolve().parents[2]

IMPORT_PROBE = """
import json, sys
import glassbox_client
from glassbox_client import AsyncGlassboxClient, GlassboxClient
import glassbox_client.cli
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "glassbox"))
print(json.dumps(heavy))
"""

BLOCKED_RUN = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "glassbox", "onnxruntime"):
            raise ImportError(f"{name} is blocked: the client must not need it")
        return None

sys.meta_path.insert(0, Blocker())
from glassbox_client.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_importing_the_whole_client_loads_neither_torch_nor_the_server() -> None:
    probe = [sys.executable, "-c", IMPORT_PROBE]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []


def test_the_client_works_where_torch_and_the_server_cannot_be_imported(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    write_model_version(tmp_path / "repository", "net", "1")
    running = start_server(model_repository=tmp_path / "repository")
    image = tmp_path / "noise.png"
    Image.fromarray((np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8)).save(image)
    argv = [sys.executable, "-c", BLOCKED_RUN, "--address", running.address, "predict", str(image), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["model"] == "net" and len(result["classes"]) == 3


def test_the_client_package_declares_no_server_dependency() -> None:
    project = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() for dep in project["dependencies"]}
    assert names.isdisjoint({"torch", "torchvision", "glassbox", "onnxruntime", "onnxruntime-gpu"})
    assert project["scripts"]["glassbox-client"] == "glassbox_client.cli:main"
