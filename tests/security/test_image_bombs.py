"""Decompression bombs in every accepted format and in the containers Pillow decodes while opening: each
is refused with INVALID_ARGUMENT naming the image field, before any pixel over the limit is decoded
(checked by a spy on Pillow's decoder set-up and by the process' peak memory), and the server keeps
serving."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from glassbox.config import LimitSettings
from glassbox.core.images import ACCEPTED_FORMATS
from glassbox_client._generated.glassbox.v1 import (
    attribution_service_pb2,
    attribution_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    tensor_pb2,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image, ImageFile
from support.image_bombs import BOMBS, Bomb, ico_bomb, watch_rss
from support.servers import RunningServer

LIMIT = LimitSettings().max_image_pixels
RSS_BOUND = 100 * 1024 * 1024
"""Peak memory growth allowed while bombs are refused: one decoded bomb alone would take 81 MB (1-bit)
to 324 MB (RGBA)."""


@pytest.fixture
def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The size of every image Pillow sets up to decode in this process while the test runs."""
    sizes: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load_prepare

    def spy(self: ImageFile.ImageFile) -> None:
        sizes.append(self.size)
        original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", spy)
    yield sizes


def _predict(server: RunningServer, data: bytes) -> grpc.RpcError | None:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    try:
        stub.Predict(
            model_service_pb2.PredictRequest(model="shapes", images=[tensor_pb2.Image(encoded=data)]),
            timeout=60,
        )
    except grpc.RpcError as error:
        return error
    return None


def _serving(server: RunningServer) -> bool:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return (
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def _warm(server: RunningServer) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    assert _predict(server, buffer.getvalue()) is None


def test_the_corpus_covers_every_accepted_format() -> None:
    covered = {b.name.split("-")[0].upper() for b in BOMBS if b.why != "not accepted"}
    assert covered >= set(ACCEPTED_FORMATS)


@pytest.mark.parametrize("bomb", BOMBS, ids=[b.name for b in BOMBS])
def test_a_bomb_is_refused_before_decoding(
    server: RunningServer, bomb: Bomb, decoded_sizes: list[tuple[int, int]]
) -> None:
    data = bomb.make()
    _warm(server)
    decoded_sizes.clear()
    with watch_rss() as rss:
        error = _predict(server, data)
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("images[0].encoded: ") and bomb.why in error.details()
    assert all(width * height <= LIMIT for width, height in decoded_sizes), decoded_sizes
    assert rss.growth < RSS_BOUND, f"{bomb.name}: peak RSS grew by {rss.growth / 2**20:.0f} MiB"
    assert _serving(server)


def test_eight_container_bombs_at_once_keep_memory_bounded(
    server: RunningServer, decoded_sizes: list[tuple[int, int]]
) -> None:
    data = ico_bomb()
    _warm(server)
    decoded_sizes.clear()
    with watch_rss() as rss, ThreadPoolExecutor(8) as pool:
        errors = list(pool.map(lambda _: _predict(server, data), range(8)))
    assert all(e is not None and e.code() is grpc.StatusCode.INVALID_ARGUMENT for e in errors)
    assert not decoded_sizes
    assert rss.growth < RSS_BOUND, f"peak RSS grew by {rss.growth / 2**20:.0f} MiB"
    assert _serving(server)


def test_an_attribution_request_refuses_a_bomb_naming_its_image(server: RunningServer) -> None:
    stub = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    images = [tensor_pb2.Image(encoded=buffer.getvalue()), tensor_pb2.Image(encoded=ico_bomb())]
    request = attribution_service_pb2.AttributeRequest(
        model="shapes", images=images, saliency=attribution_service_pb2.SaliencyParams()
    )
    with pytest.raises(grpc.RpcError) as error:
        stub.Attribute(request, timeout=60)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("images[1].encoded: image format ICO is not accepted")
