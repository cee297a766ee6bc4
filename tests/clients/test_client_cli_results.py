"""Every job kind's result from the shell: `jobs submit --wait` writes it as strict JSON (no bytes) and
as its pictures (`-o`); `jobs get` prints the job; `jobs list` has a header and survives `| head -1`;
the Python client returns the inspection kinds typed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from glassbox_client import GlassboxClient
from glassbox_client.cli import main
from glassbox_client.inspection_results import ActivationAtlas, EmbeddingMap, TopActivating
from PIL import Image
from support.paths import ROOT
from support.servers import RunningServer

STAR = ROOT / "docs" / "images" / "star.png"
SMALL_SET = '{"named": "shapes-val", "limit": 8}'
KINDS = {
    "class_visualisation": ["target=star", "steps=2"],
    "feature_visualisation": ['objective={"channel": {"layer": "features.3", "channel": 1}}', "steps=2"],
    "deepdream": [
        f"image={STAR}",
        'objective={"layer": {"layer": "features.3"}}',
        "octaves=1",
        "steps_per_octave=2",
    ],
    "feature_inversion": [f"image={STAR}", "layer=features.3", "steps=2"],
    "style_transfer": [
        f"content_image={STAR}",
        f"style_image={STAR}",
        "content_layer=features.6",
        'style_layers=["features.3"]',
        "steps=2",
    ],
    "adversarial_image": [f"image={STAR}", "target=circle", "epsilon=0.03", "steps=2"],
    "maco_visualisation": [
        'objective={"channel": {"layer": "features.3", "channel": 1}}',
        "steps=2",
        "crops=1",
        "size=64",
    ],
    "robustness_evaluation": [
        f"images={SMALL_SET}",
        'attacks=[{"method": "fgsm", "epsilons": [0.02]}]',
        'minimal_epsilon={"skip": true}',
        "examples=1",
    ],
    "embedding_map": [f"images={SMALL_SET}", 'projections=["pca"]'],
    "top_activating": [f"images={SMALL_SET}", "layer=features.14", "channel=3", "count=2"],
    "activation_atlas": [f"images={SMALL_SET}", "layer=features.14", "layout=pca", "grid_size=2", "steps=2"],
    "explanation_evaluation": [
        f"images={SMALL_SET}",
        'methods=[{"saliency": {}}]',
        'metrics=["pointing_game", "sparseness"]',
        "example_images=1",
    ],
    "shape_bias": [
        'images={"named": "shapes-val"}',
        'classes=["circle", "square"]',
        "images_per_pair=1",
        "content_layer=features.6",
        'style_layers=["features.2"]',
        "steps=2",
    ],
}


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_writes_json_and_pictures(
    server: RunningServer, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = tmp_path / "out.png", tmp_path / "job.json"
    argv = ["--address", server.address, "jobs", "submit", kind, "--model", "shapes", "--wait"]
    argv += [arg for param in KINDS[kind] for arg in ("--param", param)]
    assert main([*argv, "--quiet", "-o", str(out), "--json", str(summary)]) == 0, capsys.readouterr()
    printed = capsys.readouterr().out
    assert f"{kind} on shapes: succeeded" in printed and str(out) in printed

    data = json.loads(summary.read_text())  # strict JSON: no bytes, no NaN
    assert data["kind"] == kind and data["state"] == "succeeded" and data["result"]
    pictures = [s for s in _strings(data["result"]) if s.endswith(".png")]
    assert str(out) in pictures, "the main picture goes to the name given"
    for picture in pictures:
        with Image.open(picture) as image:
            assert image.format == "PNG" and min(image.size) > 0
    assert not [s for s in _strings(data["result"]) if s.startswith("<")], "every picture was written"

    assert main(["--address", server.address, "jobs", "get", data["id"]]) == 0
    described = capsys.readouterr().out
    assert f"job {data['id']} {kind} on shapes: succeeded" in described and "result:" in described


def test_reports_are_retrievable_from_the_shell_by_job_id(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--address", server.address, "jobs", "submit", "robustness_evaluation", "--model", "shapes"]
    argv += [arg for param in KINDS["robustness_evaluation"] for arg in ("--param", param)]
    assert main(argv) == 0
    job_id = capsys.readouterr().out.strip()
    assert main(["--address", server.address, "jobs", "watch", job_id, "--quiet"]) == 0
    capsys.readouterr()
    assert (
        main(
            ["--address", server.address, "jobs", "get", job_id, "--json", "-", "-o", str(tmp_path / "r.png")]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)["result"]
    assert report["json"]["clean_acc"] == report["clean_accuracy"]  # the RobustBench JSON, parsed
    assert report["plot_png"] == str(tmp_path / "r.png") and (tmp_path / "r-examples-0.png").exists()
    assert report["attacks"][0]["attack"] == "fgsm" and 0 <= report["attacks"][0]["robust_accuracy"] <= 1


def test_jobs_list_has_a_header_and_a_closed_pipe_is_not_an_error(server: RunningServer) -> None:
    executable = shutil.which("glassbox-client", path=os.path.dirname(sys.executable))
    assert executable is not None
    env = {**os.environ, "GLASSBOX_ADDRESS": server.address}
    for _ in range(3):
        subprocess.run(
            [
                executable,
                "jobs",
                "submit",
                "class_visualisation",
                "--model",
                "shapes",
                "--param",
                "target=1",
                "--param",
                "steps=1",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    listed = subprocess.run(
        f"{executable} jobs list | head -1", shell=True, env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and listed.stderr == ""
    assert listed.stdout.split() == ["ID", "STATE", "KIND", "MODEL", "PROGRESS", "CREATED"]
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{executable} jobs list --limit 1000 | head -1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0 and "Broken pipe" not in piped.stderr


def test_submit_help_lists_each_kinds_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["jobs", "submit", "--help"])
    text = capsys.readouterr().out
    for kind in KINDS:
        assert f"  {kind} (" in text
    assert "steps_per_octave=int" in text and "ranking=max|mean" in text


def test_the_python_client_returns_inspection_results_typed(server: RunningServer) -> None:
    with GlassboxClient(server.address, timeout=60) as glassbox:
        embedding = glassbox.inspection.embedding_map(
            "shapes", images="shapes-val", limit=8, projections=["pca"], progress=False
        )
        found = glassbox.inspection.top_activating(
            "shapes", images="shapes-val", limit=8, layer="features.14", channel=3, count=2
        )
        atlas = glassbox.inspection.activation_atlas(
            "shapes", images="shapes-val", limit=8, layer="features.14", layout="pca", grid_size=2, steps=2
        )
        job = glassbox.jobs.get(found.job_id)
    assert isinstance(embedding, EmbeddingMap) and embedding.embeddings.shape[0] == 8
    assert (
        embedding.layout("pca").coordinates.shape == (8, 2) and embedding.layout("pca").by_label.size[0] > 0
    )
    assert isinstance(found, TopActivating) and len(found.examples) == 2
    first = found.examples[0]
    assert first.activation >= found.examples[1].activation and first.patch_image is not None
    assert first.patch_gradient.shape == (3, first.patch[2], first.patch[3])
    assert found.summary is not None and found.activations.shape == (8,)
    assert isinstance(atlas, ActivationAtlas) and atlas.atlas is not None and atlas.cells
    assert atlas.cells[0].tile is not None
    assert isinstance(job.typed_result, TopActivating) and job.typed_result.channel == 3
    assert job.result.images and job.result.images[0].size == found.summary.size
    assert not any(isinstance(v, bytes) for v in job.result.values.values())


def test_progress_shows_by_default_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from glassbox_client.jobs import show_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert show_progress(None) is True and show_progress(False) is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert show_progress(None) is False and show_progress(True) is True
