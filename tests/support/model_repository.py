"""Model repositories for tests: versions with seeded random weights, copies of the shipped models, and
their [monitoring] sections."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.paths import MODELS


def monitoring_section(
    *, images: int = 4, attacks: tuple[str, ...] = ("fgsm",), epsilons: tuple[float, ...] = (2 / 255,)
) -> str:
    """A model.toml [monitoring] section: a quick robustness evaluation on the demo set `shapes-val`, run
    once per new version (no schedule)."""
    quoted = ", ".join(f'"{attack}"' for attack in attacks)
    return (
        '\n[monitoring]\nreference_set = "shapes-val"\ninterval_hours = 0\n'
        f"images = {images}\nattacks = [{quoted}]\nepsilons = [{', '.join(map(repr, epsilons))}]\n"
        "corruptions = false\n"
    )


def replace_monitoring(toml: Path, section: str) -> None:
    """Replace a model.toml's [monitoring] tables (the shipped `shapes` has some) with `section`."""
    kept, skipping = [], False
    for line in toml.read_text().splitlines():
        if line.startswith("["):
            skipping = line.startswith("[monitoring")
        if not skipping:
            kept.append(line)
    toml.write_text("\n".join(kept).rstrip() + "\n" + section)


def copy_shipped_model(root: Path, name: str, *, extra_toml: str = "") -> Path:
    """Copy the shipped model `name` (versions and named sets) into `root`, with its [monitoring] tables
    replaced by `extra_toml`; returns the copy's folder."""
    folder = root / name
    shutil.copytree(MODELS / name, folder)
    for toml in folder.glob("*/model.toml"):
        replace_monitoring(toml, extra_toml)
    return folder


def write_model_version(
    root: Path,
    name: str,
    version: str,
    *,
    architecture: str = "glassbox.shapes_cnn",
    labels: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star", "ring"),
    size: tuple[int, int] = (64, 64),
    fmt: str = "safetensors",
    seed: int = 0,
    extra_toml: str = "",
    logit_scale: float = 1.0,
) -> Path:
    """Write a model version with random weights (seeded) into a repository folder; returns the folder.

    `logit_scale` multiplies the last linear layer, so that random logits spread as a trained model's do
    (perturbation methods then have score differences well above float32 noise to explain)."""
    import torch
    from glassbox.models.architectures import build_architecture
    from safetensors.torch import save_file

    folder = root / name / version
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = build_architecture(architecture, len(labels)).eval()
    if logit_scale != 1.0:
        last_linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last_linear.weight.mul_(logit_scale)
            last_linear.bias.mul_(logit_scale)
    weights = {
        "safetensors": "model.safetensors",
        "state_dict": "model.pt",
        "torchscript": "model.ts",
        "onnx": "model.onnx",
    }[fmt]
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / weights))
    elif fmt == "state_dict":
        torch.save(net.state_dict(), folder / weights)
    elif fmt == "torchscript":
        torch.jit.trace(net, torch.zeros(1, 3, *size)).save(str(folder / weights))
    else:
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, *size),),
            str(folder / weights),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    arch_line = f'architecture = "{architecture}"\n' if fmt in ("safetensors", "state_dict") else ""
    label_list = ", ".join(f'"{label}"' for label in labels)
    (folder / "model.toml").write_text(
        f'format = "{fmt}"\n{arch_line}weights = "{weights}"\nlabels = [{label_list}]\n'
        f'description = "random weights, seed {seed}"\n{extra_toml}\n'
        f"[input]\nheight = {size[0]}\nwidth = {size[1]}\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n"
    )
    return folder
