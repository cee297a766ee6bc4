"""`glassbox predict` against a running server prints the top classes of an image file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, RunningServer
from glassbox.cli import main


def test_predict_prints_top_classes(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    image = ROOT / "docs" / "images" / "star.png"
    assert main(["predict", str(image), "--model", "shapes", "--address", server.address]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "model shapes version 1"
    assert out[1] == str(image)
    label, probability = out[2].split()[:2]
    assert label == "star" and float(probability.rstrip("%")) > 90


def test_predict_reports_errors_with_their_code(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert main(["predict", str(broken), "--model", "shapes", "--address", server.address]) == 1
    assert "INVALID_ARGUMENT: images[0].encoded: cannot decode image" in capsys.readouterr().err
