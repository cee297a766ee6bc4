"""The HTTP/JSON gateway against gRPC on the same server, in the same run: what transcoding costs.

Starts `glassbox serve --http` in a child process on free loopback ports (result cache off, so every
call computes), then times each call alternately over gRPC (a generated stub) and over HTTP (one
persistent HTTP/1.1 connection, JSON bodies with base64 images), and prints the median and 90th
percentile of both with their ratio and difference.

    .venv/bin/python bench/http_gateway.py            # --calls 60
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import (
    attribution_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    tensor_pb2,
)

ROOT = Path(__file__).resolve().parents[1]
STAR = (ROOT / "docs" / "images" / "star.png").read_bytes()
ATTRIBUTE = "/v1/models/shapes:attribute"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(grpc_port: int, http_port: int) -> subprocess.Popen:
    env = {**os.environ, "GLASSBOX_CACHE__ENABLED": "false", "GLASSBOX_ROBUSTNESS__MONITORING": "false"}
    command = [sys.executable, "-m", "glassbox.cli", "serve", "--address", f"127.0.0.1:{grpc_port}"]
    command += ["--http-address", f"127.0.0.1:{http_port}", "--metrics-port", "0", "--log-level", "WARNING"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", http_port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=60, help="timed calls per case and transport")
    args = parser.parse_args()
    grpc_port, http_port = free_port(), free_port()
    server = start_server(grpc_port, http_port)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        attribution = attribution_service_pb2_grpc.AttributionServiceStub(channel)
        connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
        image = {"encoded": base64.b64encode(STAR).decode()}

        def over_http(method: str, path: str, body: dict | None = None) -> Callable[[], None]:
            payload = None if body is None else json.dumps(body)

            def call() -> None:
                connection.request(method, path, payload, {"Content-Type": "application/json"})
                reply = connection.getresponse()
                data = reply.read()
                assert reply.status == 200, data[:200]
                json.loads(data)

            return call

        proto_image = tensor_pb2.Image(encoded=STAR)
        predict_request = model_service_pb2.PredictRequest(model="shapes", images=[proto_image])
        cases = {
            "ListModels": (
                lambda: models.ListModels(model_service_pb2.ListModelsRequest(), timeout=30),
                over_http("GET", "/v1/models"),
            ),
            "Predict (1 image)": (
                lambda: models.Predict(predict_request, timeout=30),
                over_http("POST", "/v1/models/shapes:predict", {"images": [image]}),
            ),
            "Attribute grad_cam + overlay PNG": (
                lambda: attribution.Attribute(
                    pb.AttributeRequest(
                        model="shapes",
                        images=[proto_image],
                        grad_cam=pb.GradCamParams(),
                        output=pb.OutputOptions(overlay_png=True),
                    ),
                    timeout=30,
                ),
                over_http(
                    "POST", ATTRIBUTE, {"images": [image], "gradCam": {}, "output": {"overlayPng": True}}
                ),
            ),
            "Attribute smoothgrad (16) + map": (
                lambda: attribution.Attribute(
                    pb.AttributeRequest(
                        model="shapes",
                        images=[proto_image],
                        smoothgrad=pb.SmoothGradParams(samples=16),
                        output=pb.OutputOptions(map=True),
                    ),
                    timeout=30,
                ),
                over_http(
                    "POST",
                    ATTRIBUTE,
                    {"images": [image], "smoothgrad": {"samples": 16}, "output": {"map": True}},
                ),
            ),
        }
        columns = ["gRPC p50", "HTTP p50", "ratio", "+ms", "gRPC p90", "HTTP p90"]
        print(f"{'call':36s} " + " ".join(f"{c:>9s}" for c in columns))
        for name, (grpc_call, http_call) in cases.items():
            for _ in range(5):  # warm-up: connections, the cost model, caches of the allocator
                grpc_call()
                http_call()
            times: dict[str, list[float]] = {"grpc": [], "http": []}
            for _ in range(args.calls):
                for kind, call in (("grpc", grpc_call), ("http", http_call)):
                    started = time.perf_counter()
                    call()
                    times[kind].append((time.perf_counter() - started) * 1000)
            (g50, g90), (h50, h90) = percentiles(times["grpc"]), percentiles(times["http"])
            cells = [f"{g50:7.2f}ms", f"{h50:7.2f}ms", f"{h50 / g50:9.2f}", f"{h50 - g50:9.2f}"]
            print(f"{name:36s} " + " ".join([*cells, f"{g90:7.2f}ms", f"{h90:7.2f}ms"]))
        connection.close()
        channel.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
