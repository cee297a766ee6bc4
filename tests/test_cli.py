"""The `glassbox` command line: `predict` against a running server prints the top classes of an image
file; `serve` flags reach the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from glassbox.cli import build_parser, main, serve_settings
from support.paths import ROOT
from support.servers import RunningServer


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
    assert "INVALID_ARGUMENT in Predict: images[0].encoded: cannot decode image" in capsys.readouterr().err


def test_serve_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GLASSBOX_JOBS__REDIS_URL", raising=False)
    config = tmp_path / "glassbox.toml"
    config.write_text("model_repository_poll_seconds = 30\n[jobs]\nworker_threads = 3\n")
    args = build_parser().parse_args(
        [
            "serve",
            "--config",
            str(config),
            "--jobs-redis-url",
            "redis://127.0.0.1:6390/2",
            "--worker-threads",
            "4",
        ]
    )
    settings = serve_settings(args)
    assert settings.jobs.redis_url == "redis://127.0.0.1:6390/2" and settings.jobs.worker_threads == 3
    assert settings.model_repository_poll_seconds == 30 and settings.worker_threads == 4
    flagged = serve_settings(build_parser().parse_args(["serve", "--model-repository-poll-seconds", "2.5"]))
    assert flagged.model_repository_poll_seconds == 2.5 and flagged.jobs.redis_url == ""
