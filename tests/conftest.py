"""Shared fixtures: a real gRPC server on an ephemeral loopback port, a real redis-server per test
module, and the shipped model repository."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from glassbox.config import Settings, load_settings
from glassbox.demo.datasets import register_generators
from glassbox.server.app import GlassboxServer

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

register_generators()  # the demo's generated sets, as every composition root registers them


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """A GlassboxServer started in this process, with a channel to it."""

    def __init__(self, settings: Settings) -> None:
        self.server = GlassboxServer(settings)
        self.port = self.server.start()
        self.address = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.address)
        grpc.channel_ready_future(self.channel).result(timeout=30)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=0)


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: start a server with settings overrides; every server started is stopped at module end.

    Robustness monitoring is off unless the test passes `robustness` settings: the shipped demo models
    ask for it, and a test's server should not run their background evaluations beside the work the
    test measures (the monitoring tests pass `robustness`)."""
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("model_repository", MODELS)
        overrides.setdefault("robustness", {"monitoring": False})
        overrides.setdefault("metrics", {"port": 0})
        # The shipped `shapes` is monitored; a test that does not configure monitoring gets none, so no
        # background check runs beside what it measures.
        overrides.setdefault("robustness", {"monitoring": False})
        settings = load_settings(address="127.0.0.1:0", **overrides)
        server = RunningServer(settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """One server on the shipped model repository with default settings, shared by a test module."""
    return start_server()


class RedisServer:
    """A redis-server of our own on a free loopback port; can be killed and restarted."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/ensure-redis.sh installs it)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


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
