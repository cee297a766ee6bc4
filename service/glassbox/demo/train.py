"""Train the demo models from a seed and write them into a model repository.

`train_demo_models` produces three version folders:

- `shapes/1`: the `glassbox.shapes_cnn` network trained on the shapes dataset (safetensors);
- `shapes-onnx/1`: the same trained network exported to ONNX (checked against torch before writing);
- `shapes-shortcut/1`: the same architecture trained on `shortcut="train"` data, i.e. with a corner patch
  whose colour gives the class away, so explanations can show it looking at the patch.

Both torch and ONNX models take *normalised* input: the mean/std written to model.toml are applied by the
service's model wrapper, so the exported graph is the bare network. Training is sized for two CPU cores
(about six minutes for everything on idle cores, eight on shared ones); run it with
`python -m glassbox.demo.train` or `glassbox demo train`. Besides the held-out classic accuracy it reports
`shapes`' accuracy on the widened training style, on the held-out generator variant and on the
independent renderer's shapes (`shape_styles`, `independent_shapes`), and writes them into model.toml.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from glassbox.demo import shapes
from glassbox.demo.independent_shapes import render_independent_shapes
from glassbox.demo.model_cards import (
    ARCHITECTURE,
    IMAGE_SIZE,
    ONNX_OPSET,
    DemoResults,
    write_model_tomls,
    write_validation_sets,
)
from glassbox.demo.shape_styles import CLASSIC, TRAINING, VARIANT, Style
from glassbox.models.architectures import SHAPES_CNN_CAM_LAYER, build_architecture

ONNX_TOLERANCE = 1e-4  # max abs difference allowed between onnxruntime and torch logits

TRAIN_SEED_OFFSET = 0  # shapes training set: generate(..., seed + TRAIN_SEED_OFFSET)
SHORTCUT_SEED_OFFSET = 1  # shortcut training set
TEST_SEED_OFFSET = 10_000  # held-out test sets, never used for training or normalisation statistics
# (classic style at this offset, the training style at +1, the variant at +2, the independent set at +3)


@dataclass(frozen=True)
class Recipe:
    """How one demo model is trained: generated images, AdamW and a one-cycle schedule.

    Each epoch's `train_size` images are split evenly among `styles` (a style listed twice gets twice the
    share), or among `warmup_styles` in the first `warmup_epochs` (a curriculum: the small network finds
    its first features much sooner on the classic images). With `fresh_each_epoch` every epoch draws new
    images (seeds `seed + data offset + 100 * epoch + part`), otherwise the first epoch's set is reused.

    The first `first_layer_alive` channels of the first batch norm have their shift held at or above
    `FIRST_LAYER_MIN_SHIFT` after every step, so they stay on for flat images (a flat image near the
    training mean normalises to ≈ 0 and the first conv has no bias: the shift alone decides). Trained
    freely, every shift goes negative (thresholds that suppress noise and texture) and the first layer is
    off on mid-grey, near where feature and class visualisation start (Lucent's noise of sd 0.01): no
    gradient reaches the pixels (tests/demo/test_generalisation.py).
    """

    train_size: int
    epochs: int
    shortcut: shapes.Shortcut = "none"
    augment: bool = True  # flips and transposes; off for the shortcut model, whose patch has a fixed corner
    styles: tuple[Style, ...] = (CLASSIC,)
    warmup_styles: tuple[Style, ...] = ()
    warmup_epochs: int = 0
    fresh_each_epoch: bool = False
    first_layer_alive: int = 0
    batch_size: int = 128
    max_lr: float = 4e-3
    weight_decay: float = 5e-4


SHAPES_RECIPE = Recipe(
    train_size=10_000,
    epochs=30,
    styles=(CLASSIC, TRAINING, TRAINING, TRAINING),
    warmup_styles=(CLASSIC, CLASSIC, TRAINING),
    warmup_epochs=2,
    fresh_each_epoch=True,
    first_layer_alive=8,
)
SHORTCUT_RECIPE = Recipe(train_size=10_000, epochs=2, shortcut="train", augment=False, first_layer_alive=8)
FIRST_LAYER_MIN_SHIFT = 0.1
"""The lowest first-layer batch-norm shift of the channels `Recipe.first_layer_alive` keeps on."""
TEST_SIZE = 2000
INDEPENDENT_TEST_SIZE = 480


def train_demo_models(
    repository: Path, *, seed: int = 0, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train `shapes` and `shapes-shortcut` from `seed`, export `shapes-onnx`, and write all three folders.

    Returns a report: per model its held-out accuracy (for the shortcut model on both train-style and
    test-style data), the normalisation used, the weights' size and the time taken.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))  # sized for two cores; don't take more from a shared machine
    try:
        return _train_and_write(Path(repository), seed, log)
    finally:
        torch.set_num_threads(threads)


def _train_and_write(repository: Path, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The body of `train_demo_models`."""
    started = time.perf_counter()

    model, mean, std, seconds = _train(SHAPES_RECIPE, seed + TRAIN_SEED_OFFSET, seed, log)
    test = shapes.generate(TEST_SIZE, seed + TEST_SEED_OFFSET, size=IMAGE_SIZE)
    acc = accuracy(model, test, mean, std)
    log(f"shapes: held-out accuracy {acc:.4f} on {TEST_SIZE} images (seed {seed + TEST_SEED_OFFSET})")
    acc_wide, acc_variant = (
        accuracy(
            model,
            shapes.generate(TEST_SIZE, seed + TEST_SEED_OFFSET + k, size=IMAGE_SIZE, style=style),
            mean,
            std,
        )
        for k, style in ((1, TRAINING), (2, VARIANT))
    )
    independent = shapes.ShapesBatch(
        *render_independent_shapes(INDEPENDENT_TEST_SIZE, seed + TEST_SEED_OFFSET + 3, IMAGE_SIZE),
        masks=torch.zeros(0),
    )
    acc_independent = accuracy(model, independent, mean, std)
    log(
        f"shapes: {acc_wide:.4f} on the training style, {acc_variant:.4f} on the held-out variant, "
        f"{acc_independent:.4f} on {INDEPENDENT_TEST_SIZE} shapes of the independent renderer"
    )
    shapes_bytes = _save_safetensors(model, repository / "shapes" / "1")
    onnx_path = repository / "shapes-onnx" / "1" / "model.onnx"
    max_diff = export_onnx(model, onnx_path, check=(test.images[:64] - _col(mean)) / _col(std))
    log(f"shapes-onnx: exported, onnxruntime vs torch max abs difference {max_diff:.2e}")

    model, sc_mean, sc_std, sc_seconds = _train(SHORTCUT_RECIPE, seed + SHORTCUT_SEED_OFFSET, seed, log)
    acc_train, acc_test = (
        accuracy(model, shapes.generate(TEST_SIZE, seed + TEST_SEED_OFFSET, shortcut=kind), sc_mean, sc_std)
        for kind in ("train", "test")
    )
    log(f"shapes-shortcut: accuracy {acc_train:.4f} with the label's patch, {acc_test:.4f} with a random one")
    shortcut_bytes = _save_safetensors(model, repository / "shapes-shortcut" / "1")

    results = DemoResults(
        seed,
        mean,
        std,
        acc,
        acc_wide,
        acc_variant,
        acc_independent,
        max_diff,
        sc_mean,
        sc_std,
        acc_train,
        acc_test,
    )
    write_model_tomls(repository, results)
    write_validation_sets(repository, seed)
    total = time.perf_counter() - started
    log(f"done in {total:.0f} s")
    return {
        "seed": seed,
        "shapes": {
            "held_out_accuracy": acc,
            "training_style_accuracy": acc_wide,
            "variant_accuracy": acc_variant,
            "independent_renderer_accuracy": acc_independent,
            "mean": mean,
            "std": std,
            "cam_layer": SHAPES_CNN_CAM_LAYER,
            "train_seconds": seconds,
            "weights_bytes": shapes_bytes,
        },
        "shapes-onnx": {"max_abs_difference": max_diff, "weights_bytes": onnx_path.stat().st_size},
        "shapes-shortcut": {
            "accuracy_patch_matches_label": acc_train,
            "accuracy_patch_random": acc_test,
            "mean": sc_mean,
            "std": sc_std,
            "train_seconds": sc_seconds,
            "weights_bytes": shortcut_bytes,
        },
        "total_seconds": total,
    }


def accuracy(
    model: nn.Module,
    batch: shapes.ShapesBatch,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    chunk: int = 500,
) -> float:
    """Top-1 accuracy of `model` (in eval mode, on normalised pixels) on a generated batch."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(batch), chunk):
            x = (batch.images[start : start + chunk] - _col(mean)) / _col(std)
            correct += int((model(x).argmax(1) == batch.labels[start : start + chunk]).sum())
    return correct / max(len(batch), 1)


def export_onnx(model: nn.Module, path: Path, *, check: torch.Tensor) -> float:
    """Export the bare network (input `pixels`, output `logits`, dynamic batch) and verify it.

    Runs onnxruntime and torch on the normalised batch `check` and raises if any logit differs by more
    than `ONNX_TOLERANCE`; returns the max abs difference.
    """
    import onnxruntime

    model = model.eval().to(memory_format=torch.contiguous_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # torch.export's ONNX path needs onnxscript, which glassbox does not depend on: the TorchScript
        # exporter handles this plain CNN exactly (verified below), it only warns that it is the legacy path.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (check[:2],),
            str(path),
            dynamo=False,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort_logits,) = session.run(["logits"], {"pixels": check.numpy()})
    with torch.inference_mode():
        torch_logits = model(check).numpy()
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    if max_diff > ONNX_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from torch by {max_diff:.2e} (> {ONNX_TOLERANCE})")
    return max_diff


def _train(
    recipe: Recipe, data_seed: int, seed: int, log: Callable[[str], None]
) -> tuple[nn.Module, list[float], list[float], float]:
    """Train one network; returns it (eval mode) with the training set's per-channel mean/std and seconds."""
    started = time.perf_counter()
    images, y = _training_set(recipe, data_seed, 0)
    mean = [round(float(m), 4) for m in images.mean((0, 2, 3))]
    std = [round(float(s), 4) for s in images.std((0, 2, 3))]
    x = _normalise(images, mean, std)
    log(
        f"{len(y)} training images per epoch (shortcut={recipe.shortcut}), "
        f"{time.perf_counter() - started:.0f} s"
    )

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # initialise from the seed without disturbing the caller's global RNG
        torch.manual_seed(seed)
        model = build_architecture(ARCHITECTURE, len(shapes.CLASSES))
    model = model.to(memory_format=torch.channels_last).train()
    steps_per_epoch = len(y) // recipe.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.25
    )
    for epoch in range(recipe.epochs):
        if recipe.fresh_each_epoch and epoch > 0:
            images, y = _training_set(recipe, data_seed, epoch)
            x = _normalise(images, mean, std)
        order = torch.randperm(len(y), generator=generator)
        total, correct = 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            xb, yb = x[idx], y[idx]
            if recipe.augment:
                xb = _augment(xb, generator)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if recipe.first_layer_alive:
                _keep_first_layer_alive(model, recipe.first_layer_alive)
            total += float(loss.detach())
            correct += int((logits.argmax(1) == yb).sum())
        log(
            f"  epoch {epoch + 1}/{recipe.epochs}: loss {total / steps_per_epoch:.4f}, "
            f"train accuracy {correct / (steps_per_epoch * recipe.batch_size):.4f}, "
            f"{time.perf_counter() - started:.0f} s"
        )
    model = model.eval().to(memory_format=torch.contiguous_format)
    return model, mean, std, time.perf_counter() - started


def _training_set(recipe: Recipe, data_seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's images (unnormalised) and labels: `recipe.train_size` split evenly among its styles."""
    styles = recipe.warmup_styles if epoch < recipe.warmup_epochs else recipe.styles
    parts = [
        shapes.generate(
            count,
            data_seed + 100 * epoch + part,
            size=IMAGE_SIZE,
            shortcut=recipe.shortcut,
            style=style,
        )
        for part, (style, count) in enumerate(
            zip(styles, _split(recipe.train_size, len(styles)), strict=True)
        )
    ]
    return torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts])


def _split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal counts."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def _normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    return ((images - _col(mean)) / _col(std)).contiguous(memory_format=torch.channels_last)


def _keep_first_layer_alive(model: nn.Module, channels: int) -> None:
    """Hold the first batch norm's first `channels` shifts at `FIRST_LAYER_MIN_SHIFT` or above."""
    first_norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        first_norm.bias[:channels].clamp_(min=FIRST_LAYER_MIN_SHIFT)


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image, a random horizontal flip then a random transpose: four of the square's symmetries.

    Every class is closed under them (crosses have 90° symmetry, the other shapes come at any rotation).
    """
    flip, transpose = torch.rand(2, x.shape[0], 1, 1, 1, generator=generator) < 0.5
    x = torch.where(flip, x.flip(3), x)
    return torch.where(transpose, x.transpose(2, 3), x)


def _save_safetensors(model: nn.Module, folder: Path) -> int:
    """Write the state dict (parameters and BN buffers) as `model.safetensors`; returns its size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"architecture": ARCHITECTURE})
    return (folder / "model.safetensors").stat().st_size


def _col(values: Sequence[float]) -> torch.Tensor:
    """Per-channel values shaped [3, 1, 1] to broadcast over [N, 3, H, W]."""
    return torch.tensor(values, dtype=torch.float32).view(3, 1, 1)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m glassbox.demo.train [--repository models] [--seed 0]`."""
    parser = argparse.ArgumentParser(prog="python -m glassbox.demo.train", description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=Path("models"), help="model repository root")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, initialisation and shuffling")
    args = parser.parse_args(argv)
    report = train_demo_models(args.repository, seed=args.seed)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
