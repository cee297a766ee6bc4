"""Benchmark: latency of a cached SmoothGrad result against computing it, over gRPC.

    python bench/cache.py [--hits 300] [--misses 15] [--samples 50] [--models models]

For each cache backend (in-process LRU, Redis on loopback) a `glassbox serve` subprocess serves the
demo model `shapes`; the client measures end-to-end gRPC latency of
- misses: SmoothGrad (n = --samples) with a new noise seed each time, so every call computes and stores;
- hits: one request repeated (after one warm-up call stored it), every call served from the cache.
It prints p50 and p99 of both and the miss/hit ratio, measured in the same run. The target is a Redis
hit p50 ≤ 3 ms. Without a trained demo model in --models, a random-weights model of the same
architecture stands in (the timings depend on the architecture, not on the weights).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import torch
from glassbox.demo.shapes import CLASSES, generate
from glassbox.models.architectures import build_architecture
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, tensor_pb2
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def model_repository(models: Path, workdir: Path) -> tuple[Path, str]:
    """The demo repository if the shapes model is trained, else a random-weights stand-in."""
    if (models / "shapes" / "1" / "model.toml").is_file():
        return models, "trained demo model models/shapes/1"
    folder = workdir / "models" / "shapes" / "1"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = build_architecture("glassbox.shapes_cnn", len(CLASSES))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    labels = ", ".join(f'"{label}"' for label in CLASSES)
    (folder / "model.toml").write_text(
        f'format = "safetensors"\narchitecture = "glassbox.shapes_cnn"\nweights = "model.safetensors"\n'
        f"labels = [{labels}]\n[input]\nheight = 64\nwidth = 64\n"
    )
    return folder.parents[1], "random-weights stand-in (same architecture: models/shapes/1 not trained yet)"


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@contextmanager
def glassbox_server(repository: Path, redis_url: str | None) -> Iterator[grpc.Channel]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "glassbox.cli",
        "serve",
        "--address",
        f"127.0.0.1:{port}",
        "--model-repository",
        str(repository),
        "--metrics-port",
        "0",
        "--log-level",
        "WARNING",
    ]
    if redis_url:
        command += ["--redis-url", redis_url]
    process = subprocess.Popen(command, env={**os.environ, "GLASSBOX_TORCH_THREADS": "2"})
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=120)
        yield channel
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def request(pixels: np.ndarray, samples: int, seed: int) -> pb.AttributeRequest:
    image = tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(
            dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=list(pixels.shape), data=pixels.tobytes()
        )
    )
    return pb.AttributeRequest(
        model="shapes",
        images=[image],
        smoothgrad=pb.SmoothGradParams(samples=samples, seed=seed),
        output=pb.OutputOptions(map=True),
    )


def measure(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    requests: list[pb.AttributeRequest],
    expect_cached: bool,
) -> np.ndarray:
    seconds = []
    for message in requests:
        started = time.perf_counter()
        response = stub.Attribute(message, timeout=300)
        seconds.append(time.perf_counter() - started)
        if response.from_cache != expect_cached:
            raise RuntimeError(f"expected from_cache={expect_cached}, got {response.from_cache}")
    return np.array(seconds)


def run(
    backend: str, channel: grpc.Channel, pixels: np.ndarray, args: argparse.Namespace
) -> dict[str, float]:
    stub = attribution_service_pb2_grpc.AttributionServiceStub(channel)
    stub.Attribute(request(pixels, args.samples, seed=10_000), timeout=300)  # warm-up: first call, lazy init
    misses = measure(stub, [request(pixels, args.samples, seed=s) for s in range(args.misses)], False)
    hit_request = request(pixels, args.samples, seed=0)  # stored by the first miss
    hits = measure(stub, [hit_request] * args.hits, True)
    row = {
        "miss_p50": float(np.percentile(misses, 50)),
        "miss_p99": float(np.percentile(misses, 99)),
        "hit_p50": float(np.percentile(hits, 50)),
        "hit_p99": float(np.percentile(hits, 99)),
    }
    print(
        f"{backend:<10} miss p50 {row['miss_p50'] * 1e3:8.1f} ms  p99 {row['miss_p99'] * 1e3:8.1f} ms | "
        f"hit p50 {row['hit_p50'] * 1e3:6.2f} ms  p99 {row['hit_p99'] * 1e3:6.2f} ms | "
        f"miss/hit p50 {row['miss_p50'] / row['hit_p50']:6.0f}×",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--misses", type=int, default=15)
    parser.add_argument("--samples", type=int, default=50, help="SmoothGrad samples")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    pixels = generate(1, seed=7).images[0].numpy().astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        repository, description = model_repository(args.models, workdir)
        print(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, torch {torch.__version__}, grpcio {grpc.__version__}"
        )
        print(
            f"model: {description}; SmoothGrad n={args.samples}, one 64×64 image, map output; "
            f"{args.misses} misses, {args.hits} hits per backend"
        )
        results = {}
        with glassbox_server(repository, None) as channel:
            results["memory"] = run("memory", channel, pixels, args)
        with redis_server(workdir) as url, glassbox_server(repository, url) as channel:
            results["redis"] = run("redis", channel, pixels, args)
    redis_hit = results["redis"]["hit_p50"]
    verdict = "met" if redis_hit <= 0.003 else "NOT met"
    print(f"target Redis hit p50 <= 3 ms: {verdict} ({redis_hit * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
