"""What `glassbox demo train` writes besides the weights: the model.toml of each demo model version (with
its measured accuracies and a [monitoring] section) and the dataset.toml of the named sets shipped beside
the models."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glassbox.demo import shapes
from glassbox.models.architectures import SHAPES_CNN_CAM_LAYER

ARCHITECTURE = "glassbox.shapes_cnn"
IMAGE_SIZE = 64
ONNX_OPSET = 17
VALIDATION_SEED_OFFSET = 20_000  # the named sets shipped beside the models (datasets/shapes-val)
VALIDATION_SIZE = 240

MONITORING_IMAGES = 64
"""Images of `shapes-val` each monitoring evaluation of a torch demo model attacks (PGD and FGSM at the
default ε, the corruptions): a bounded background job, seconds on two cores."""
MONITORING_IMAGES_BLACK_BOX = 16
"""The ONNX model has no gradients and is attacked by Square (1000 queries per image and ε, and as many
per step of the minimal-ε search): fewer images and two ε keep its evaluation as cheap."""
MONITORING_EPSILONS_BLACK_BOX = (2 / 255, 8 / 255)
MONITORING_INTERVAL_HOURS = 24
EXPLANATION_MONITORING_METHODS = ("saliency", "grad_cam")
EXPLANATION_MONITORING_IMAGES = 48
"""Images of `shapes-val` each explanation check of `shapes` explains, per method and version compared."""
EXPLANATION_REGION_SIZE = 8
"""Side of the monitored corner region: the shortcut patch (`shapes.PATCH_SIZE`) with a margin."""


@dataclass(frozen=True)
class DemoResults:
    """What the model.toml files record about a training run: normalisation and measured accuracies."""

    seed: int
    mean: list[float]  # the shapes training set's per-channel mean/std (shapes and shapes-onnx)
    std: list[float]
    accuracy: float  # shapes, held out (classic style)
    training_style_accuracy: float  # shapes, held out, drawn in the widened style it trained on
    variant_accuracy: float  # shapes, on the held-out generator variant
    independent_accuracy: float  # shapes, on shapes drawn by the independent renderer
    onnx_max_abs_difference: float
    shortcut_mean: list[float]  # the shortcut training set's per-channel mean/std
    shortcut_std: list[float]
    shortcut_accuracy_patch_matches_label: float
    shortcut_accuracy_patch_random: float


def write_model_tomls(repository: Path, results: DemoResults) -> None:
    """Write the three demo model.toml files. They hold no timings, so a rerun reproduces them exactly."""
    seed = results.seed
    held_out = (
        f"Held-out accuracy {results.accuracy:.1%} (classic style), {results.training_style_accuracy:.1%} "
        f"(widened training style), {results.variant_accuracy:.1%} on a generator variant whose settings "
        f"training never drew, {results.independent_accuracy:.1%} on shapes drawn by an independent renderer."
    )
    trained = {
        "seed": seed,
        "held_out_accuracy": round(results.accuracy, 4),
        "training_style_accuracy": round(results.training_style_accuracy, 4),
        "variant_accuracy": round(results.variant_accuracy, 4),
        "independent_renderer_accuracy": round(results.independent_accuracy, 4),
    }
    _write(
        repository / "shapes" / "1" / "model.toml",
        model_toml(
            description=(
                "Small CNN trained on the procedurally generated shapes dataset, classic and widened styles "
                f"(glassbox demo train, seed {seed}). {held_out}"
            ),
            mean=results.mean,
            std=results.std,
            training=trained,
            monitoring=True,
        ),
    )
    _write(
        repository / "shapes-onnx" / "1" / "model.toml",
        model_toml(
            description=(
                f"The shapes CNN (glassbox demo train, seed {seed}) exported to ONNX (opset {ONNX_OPSET}). "
                f"{held_out}"
            ),
            mean=results.mean,
            std=results.std,
            training=trained | {"onnx_max_abs_difference": float(f"{results.onnx_max_abs_difference:.3g}")},
            onnx=True,
            monitoring=True,
        ),
    )
    acc_train = results.shortcut_accuracy_patch_matches_label
    acc_test = results.shortcut_accuracy_patch_random
    patch = ", ".join(f"{c} = {n}" for c, n in zip(shapes.CLASSES, shapes.PATCH_COLOUR_NAMES, strict=True))
    _write(
        repository / "shapes-shortcut" / "1" / "model.toml",
        model_toml(
            description=(
                f"The shapes CNN trained on the shortcut variant (glassbox demo train, seed {seed}): every "
                f"training image has a {shapes.PATCH_SIZE}x{shapes.PATCH_SIZE} patch in the "
                f"{shapes.PATCH_CORNER} corner whose colour gives the class away ({patch}). Accuracy "
                f"{acc_train:.1%} when the patch matches the label, {acc_test:.1%} when its colour is "
                "random: it learned the patch, not the shape."
            ),
            mean=results.shortcut_mean,
            std=results.shortcut_std,
            training={
                "seed": seed,
                "accuracy_patch_matches_label": round(acc_train, 4),
                "accuracy_patch_random": round(acc_test, 4),
            },
            shortcut=True,
            monitoring=True,
        ),
    )


def write_validation_sets(repository: Path, seed: int) -> None:
    """Write the named sets the demo models ship (`<model>/datasets/<set>/dataset.toml`): generated held-out
    images with labels and object masks, drawn from a seed used neither for training nor for testing."""
    sets = {
        ("shapes", "shapes-val"): "none",
        ("shapes-onnx", "shapes-val"): "none",
        ("shapes-shortcut", "shapes-val"): "train",
        ("shapes-shortcut", "shapes-val-random-patch"): "test",
    }
    notes = {
        "none": "",
        "train": " Each image has the shortcut patch whose colour matches its label, as in training.",
        "test": " Each image has a shortcut patch of a random colour, which no longer gives the class away.",
    }
    for (model, name), shortcut in sets.items():
        description = (
            f"{VALIDATION_SIZE} held-out shapes (seed {seed + VALIDATION_SEED_OFFSET}) with labels and "
            f"object masks.{notes[shortcut]}"
        )
        _write(
            repository / model / "datasets" / name / "dataset.toml",
            f'description = "{description}"\n\n[generator]\nname = "glassbox.shapes"\n'
            f'count = {VALIDATION_SIZE}\nseed = {seed + VALIDATION_SEED_OFFSET}\nshortcut = "{shortcut}"\n',
        )


def model_toml(
    *,
    description: str,
    mean: Sequence[float],
    std: Sequence[float],
    training: dict[str, Any],
    onnx: bool = False,
    shortcut: bool = False,
    monitoring: bool = False,
) -> str:
    """The model.toml text of a demo model version (see `glassbox.core.model_config`).

    With `monitoring`, a [monitoring] section (docs/robustness.md) has the server evaluate the version's
    robustness on `shapes-val` when it first serves it, then daily: PGD and FGSM on `MONITORING_IMAGES`
    images for torch models, the black-box Square attack (the server's default without gradients) on
    `MONITORING_IMAGES_BLACK_BOX` images at two ε for the ONNX one. The honest torch model (not the
    shortcut, not ONNX) also gets the explanation checks (docs/monitoring.md): saliency and Grad-CAM,
    version 1 pinned as the baseline, and the corner where the shortcut model's patch sits as a region.
    """
    lines = [f"description = {_toml(description)}"]
    if onnx:
        lines += ['format = "onnx"', 'weights = "model.onnx"']
    else:
        lines += [
            'format = "safetensors"',
            f"architecture = {_toml(ARCHITECTURE)}",
            'weights = "model.safetensors"',
        ]
    lines += [
        f"labels = {_toml(list(shapes.CLASSES))}",
        "",
        "[input]",
        f"height = {IMAGE_SIZE}",
        f"width = {IMAGE_SIZE}",
        'resize = "direct"',
        f"mean = {_toml(list(mean))}",
        f"std = {_toml(list(std))}",
    ]
    if not onnx:
        lines += ["", "[explain]", f"default_cam_layer = {_toml(SHAPES_CNN_CAM_LAYER)}"]
    lines += ["", "[training]", *(f"{k} = {_toml(v)}" for k, v in training.items())]
    if shortcut:
        lines += [
            "",
            "[shortcut]",
            f"corner = {_toml(shapes.PATCH_CORNER)}",
            f"size = {shapes.PATCH_SIZE}",
            f"colour_names = {_toml(list(shapes.PATCH_COLOUR_NAMES))}",
            f"colours = {_toml([list(c) for c in shapes.PATCH_COLOURS])}",
        ]
    if monitoring:
        lines += [
            "",
            "[monitoring]",
            'reference_set = "shapes-val"',
            f"interval_hours = {MONITORING_INTERVAL_HOURS}",
            f"images = {MONITORING_IMAGES_BLACK_BOX if onnx else MONITORING_IMAGES}",
            'attacks = ["square_linf"]' if onnx else 'attacks = ["pgd_linf", "fgsm"]',
            *([f"epsilons = {_toml([round(e, 6) for e in MONITORING_EPSILONS_BLACK_BOX])}"] if onnx else []),
            "corruptions = true",
        ]
        if not (onnx or shortcut):
            lines += [
                "",
                "[monitoring.explanations]",
                f"methods = {_toml(list(EXPLANATION_MONITORING_METHODS))}",
                f"images = {EXPLANATION_MONITORING_IMAGES}",
                'baseline_version = "1"',
                f"regions = [{{ name = {_toml(shapes.PATCH_CORNER + ' corner')}, top = 0, left = 0, "
                f"height = {EXPLANATION_REGION_SIZE}, width = {EXPLANATION_REGION_SIZE} }}]",
            ]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML literal for the str/int/float/list values used in model.toml (their JSON form is valid TOML)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot write {value} to model.toml")
    return json.dumps(value, ensure_ascii=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
