"""`glassbox-client`: models, predict and explain write the promised text, JSON and PNG files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from glassbox.demo.shapes import generate
from glassbox_client.cli import main
from PIL import Image
from support.model_repository import write_model_version
from support.servers import RunningServer


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "shapes", "1")
    return start_server(model_repository=root)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "shape.png"
    pixels = generate(1, seed=5).images[0].permute(1, 2, 0).numpy()
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
    return path


def test_models_lists_and_prints_json(running: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--address", running.address, "models"]) == 0
    assert capsys.readouterr().out.split() == ["shapes", "1", "ready"]
    assert main(["--address", running.address, "models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"name": "shapes", "versions": [{"version": "1", "state": "ready", "error": ""}]}]


def test_predict_json_names_each_image(
    running: RunningServer, image_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--address", running.address, "predict", str(image_file), "--top-k", "2", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["image"] == str(image_file) and result["model"] == "shapes"
    assert len(result["classes"]) == 2
    assert result["classes"][0]["probability"] >= result["classes"][1]["probability"]


def test_explain_writes_png_and_json(
    running: RunningServer, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay, heatmap, summary = tmp_path / "out.png", tmp_path / "heat.png", tmp_path / "result.json"
    argv = ["--address", running.address, "explain", str(image_file), "--method", "integrated_gradients"]
    argv += ["-o", str(overlay), "--heatmap", str(heatmap), "--json", str(summary), "--param", "steps=4"]
    argv += ["--target", "square"]
    assert main(argv) == 0
    assert "integrated_gradients on shapes/1 for square" in capsys.readouterr().out
    for png in (overlay, heatmap):
        with Image.open(png) as written:
            assert written.format == "PNG" and written.size == (64, 64)
    data = json.loads(summary.read_text())
    assert data["method"] == "integrated_gradients" and data["target"]["label"] == "square"
    assert data["map_shape"] == [64, 64] and data["convergence_delta"] is not None
    assert data["stats"]["backward_passes"] >= 4


def test_server_errors_exit_1_with_the_message(
    running: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["--address", running.address, "predict", str(broken), "--model", "shapes"]) == 1
    err = capsys.readouterr().err
    assert "INVALID_ARGUMENT" in err and "images[0].encoded" in err
    assert main(["--address", running.address, "model", "nope"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["--address", running.address, "health"]) == 0


def test_the_installed_entry_point_runs(running: RunningServer, image_file: Path, tmp_path: Path) -> None:
    executable = shutil.which("glassbox-client", path=os.path.dirname(sys.executable))
    assert executable is not None, "the glassbox-client console script is not installed in this environment"
    env = {**os.environ, "GLASSBOX_ADDRESS": running.address}
    out = tmp_path / "overlay.png"
    done = subprocess.run(
        [executable, "explain", str(image_file), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_explain_many_inputs_writes_one_output_each(
    running: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder, several files or a quoted glob; outputs to a folder or a {stem} pattern; pictures at each
    image's own size unless --no-original-size."""
    images = tmp_path / "in"
    images.mkdir()
    batch = generate(3, seed=9, size=96).images.permute(0, 2, 3, 1).numpy()
    for index, pixels in enumerate(batch):
        Image.fromarray((pixels * 255).round().astype(np.uint8)).save(images / f"shape{index}.png")
    (images / "notes.txt").write_text("not an image")
    base = ["--address", running.address, "explain", "--method", "saliency"]

    assert main([*base, str(images), "-o", str(tmp_path / "overlays"), "--json", str(tmp_path / "js")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all("saliency on shapes/1" in line for line in printed)
    for index in range(3):
        with Image.open(tmp_path / "overlays" / f"shape{index}.png") as overlay:
            assert overlay.size == (96, 96)
        summary = json.loads((tmp_path / "js" / f"shape{index}.json").read_text())
        assert summary["image"] == str(images / f"shape{index}.png") and summary["map_shape"] == [96, 96]

    pattern = str(tmp_path / "small" / "{stem}-map.png")
    (tmp_path / "small").mkdir()
    argv = [*base, str(images / "shape*.png"), "-o", pattern, "--no-original-size", "--quiet"]
    assert main(argv) == 0
    for index in range(3):
        with Image.open(tmp_path / "small" / f"shape{index}-map.png") as overlay:
            assert overlay.size == (64, 64)

    assert main([*base, str(images / "nothing*.png")]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_both_predict_commands_print_the_same(
    running: RunningServer, image_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glassbox.cli import main as server_main

    assert main(["--address", running.address, "predict", str(image_file)]) == 0
    client_output = capsys.readouterr().out
    assert server_main(["predict", str(image_file), "--address", running.address]) == 0
    assert capsys.readouterr().out == client_output
    assert client_output.startswith("model shapes version 1\n")
