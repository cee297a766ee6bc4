"""`glassbox serve` as a real process: SIGTERM flips health to NOT_SERVING, lets in-flight calls finish
within the grace period, then exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc, tensor_pb2
from support.model_repository import write_model_version
from support.servers import free_port


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slow")
    write_model_version(root, "slow", "1", architecture="resnet18", labels=tuple("abcd"), size=(224, 224))
    return root


def test_sigterm_drains_in_flight_calls_then_exits(slow_repo: Path) -> None:
    port = free_port()
    env = {**os.environ, "GLASSBOX_GRACE_PERIOD_SECONDS": "30", "GLASSBOX_METRICS__PORT": "0"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "glassbox.cli",
            "serve",
            "--address",
            f"127.0.0.1:{port}",
            "--model-repository",
            str(slow_repo),
            "--device",
            "cpu",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        pixels = np.random.default_rng(0).random((3, 224, 224), dtype=np.float32)
        image = tensor_pb2.Image(
            pixels=tensor_pb2.Tensor(dtype=1, shape=[3, 224, 224], data=pixels.tobytes())
        )
        request = pb.PredictRequest(model="slow", images=[image] * 24, top_k=1)
        stub.Predict(pb.PredictRequest(model="slow", images=[image], top_k=1), timeout=30)
        result: dict[str, object] = {}

        def call() -> None:
            try:
                result["response"] = stub.Predict(request, timeout=120)
            except grpc.RpcError as exc:
                result["error"] = exc

        in_flight = threading.Thread(target=call)
        in_flight.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        in_flight.join(timeout=120)
        assert "error" not in result, result.get("error")
        assert len(result["response"].predictions) == 24  # type: ignore[attr-defined]
        assert process.wait(timeout=60) == 0
        log = process.stderr.read() if process.stderr else ""
        assert "received signal 15" in log and "glassbox stopped" in log
        assert "loaded model slow version 1 from" in log and "on cpu in" in log
    finally:
        if process.poll() is None:
            process.kill()
