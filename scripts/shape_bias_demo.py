"""Regenerate the pictures and numbers of docs/jobs.md, "Texture or shape?": the shape bias of the honest
demo model `shapes` and of `shapes-shortcut`, each on its own `shapes-val`, with both cue-conflict
constructions.

    .venv/bin/python scripts/shape_bias_demo.py     # writes docs/images/shape-bias-*.png, prints a table

Validates the same spec a `shape_bias` job gets (the job kind's own `validate`) and runs the job's core
on the shipped model repository (no server), seeded: rerunning gives the same pictures and numbers. Run
it again after retraining the demo models.
"""

from __future__ import annotations

from pathlib import Path

import torch
from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.demo.datasets import register_generators
from glassbox.generative.optimise import TokenReporter
from glassbox.generative.shape_bias import measure
from glassbox.models.repository import ModelRepository
from glassbox.serving.execution import SCHEDULED
from glassbox.wire.kinds.shape_bias import result, validate_shape_bias
from glassbox_client._generated.glassbox.v1 import datasets_pb2
from glassbox_client._generated.glassbox.v1 import shape_bias_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
SETTINGS = {"content_layer": "features.10", "images_per_pair": 2, "steps": 30, "seed": 0}
"""All six classes, 30 ordered pairs, two cue-conflict images each, 30 steps."""
TEXTURE = ("features.2", "features.6")
"""Early layers: their Gram matrices carry colour and local texture."""
CLASS_TEXTURE = ("features.2", "features.6", "features.10")
"""With a layer the classifier reads late, whose Gram matrices carry the class itself."""
IMAGE, OBJECT = pb.CUE_CONFLICT_CONSTRUCTION_IMAGE, pb.CUE_CONFLICT_CONSTRUCTION_OBJECT
RUNS = (
    ("shapes", OBJECT, TEXTURE, "shape-bias-shapes.png"),
    ("shapes", IMAGE, TEXTURE, None),
    ("shapes-shortcut", OBJECT, TEXTURE, "shape-bias-shortcut.png"),
    ("shapes-shortcut", IMAGE, TEXTURE, "shape-bias-shortcut-image.png"),
    ("shapes", OBJECT, CLASS_TEXTURE, None),
)
"""(model, construction, style layers, picture written or None), each model on its own `shapes-val`."""


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the same floating-point sums on any machine, and no spinning on a busy one
    settings = Settings()
    register_generators()
    repository = ModelRepository(ROOT / "models", device=torch.device("cpu"))
    repository.load_all()
    print("| model | construction | style layers | shape bias | shape / texture / other | accuracy | s |")
    print("|---|---|---|---|---|---|---|")
    for model, construction, style_layers, picture in RUNS:
        spec = pb.ShapeBiasSpec(
            model=model,
            images=datasets_pb2.ImageSet(named="shapes-val"),
            construction=construction,
            style_layers=style_layers,
            **SETTINGS,
        )
        job = validate_shape_bias(spec, repository, settings)
        call = CallContext(job.style.model, CancellationToken(), settings.attribution, compute=SCHEDULED)
        generator = torch.Generator().manual_seed(spec.seed)
        report = measure(job, call, generator=generator, reporter=TokenReporter())
        message = result(job, report)
        d = message.decisions
        name = (
            pb.CueConflictConstruction.Name(construction).removeprefix("CUE_CONFLICT_CONSTRUCTION_").lower()
        )
        layers = ", ".join(layer.removeprefix("features.") for layer in style_layers)
        print(
            f"| `{model}` | {name} | {layers} | {message.shape_bias:.2f} "
            f"| {d.shape} / {d.texture} / {d.other} "
            f"| {message.content_accuracy:.0%}, {message.style_accuracy:.0%} | {message.wall_seconds:.0f} |",
            flush=True,
        )
        if picture:
            (IMAGES / picture).write_bytes(message.grid_png)


if __name__ == "__main__":
    main()
