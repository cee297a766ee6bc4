"""The synchronous Python client against a real server: every input form, typed results, typed errors."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from glassbox.demo.shapes import generate
from glassbox_client import (
    DeadlineExceededError,
    GlassboxClient,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from PIL import Image
from support.model_repository import write_model_version
from support.servers import RunningServer


@pytest.fixture(scope="module")
def running(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "shapes", "1", extra_toml='[explain]\ndefault_cam_layer = "features.6"\n')
    return start_server(model_repository=root)


@pytest.fixture(scope="module")
def client(running: RunningServer) -> GlassboxClient:
    with GlassboxClient(running.address, timeout=20) as glassbox:
        yield glassbox


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """A shapes image as uint8 [64, 64, 3]."""
    image = generate(1, seed=3).images[0]
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def png_file(pixels: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "shape.png"
    Image.fromarray(pixels).save(path)
    return path


def test_health_and_model_listing(client: GlassboxClient) -> None:
    assert client.health() == "SERVING"
    assert client.health("model/shapes") == "SERVING"
    models = client.models()
    assert [m.name for m in models] == ["shapes"]
    assert models[0].versions[0].version == "1" and models[0].versions[0].state == "ready"
    info = client.model("shapes")
    assert info.backend == "torch"
    assert info.input_size == (64, 64)
    assert info.labels == ["circle", "square", "triangle", "cross", "star", "ring"]
    assert "saliency" in info.supported_methods
    assert info.mean == pytest.approx((0.5, 0.5, 0.5)) and info.std == pytest.approx((0.25, 0.25, 0.25))
    assert any(layer.cam_compatible for layer in info.layers)


def test_every_input_form_gives_the_same_prediction(
    client: GlassboxClient, pixels: np.ndarray, png_file: Path
) -> None:
    forms = [
        png_file,
        str(png_file),
        png_file.read_bytes(),
        Image.fromarray(pixels),
        Image.fromarray(pixels).convert("RGBA"),
        pixels,
        pixels.astype(np.float32) / 255,
        np.transpose(pixels, (2, 0, 1)).astype(np.float64) / 255,
    ]
    predictions = client.predict(forms, model="shapes", top_k=6)
    assert len(predictions) == len(forms)
    reference = predictions[0]
    probabilities = [c.probability for c in reference.classes]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    for prediction in predictions[1:]:
        assert [c.index for c in prediction.classes] == [c.index for c in reference.classes]
        assert [c.probability for c in prediction.classes] == pytest.approx(probabilities, abs=1e-5)
    assert reference.model == "shapes" and reference.version == "1"
    assert reference.top == reference.classes[0]


def test_a_four_dimensional_array_is_a_batch(client: GlassboxClient, pixels: np.ndarray) -> None:
    batch = np.stack([pixels, pixels[::-1]])
    predictions = client.predict(batch, model="shapes", top_k=1)
    assert len(predictions) == 2
    single = client.predict(pixels, model="shapes", top_k=1)
    assert predictions[0].top.probability == pytest.approx(single[0].top.probability, abs=1e-6)


def test_grayscale_arrays_are_expanded(client: GlassboxClient, pixels: np.ndarray) -> None:
    gray = pixels[:, :, 0]
    from_gray = client.predict(gray, model="shapes", top_k=6)[0]
    from_rgb = client.predict(np.repeat(gray[:, :, None], 3, axis=2), model="shapes", top_k=6)[0]
    assert [c.probability for c in from_gray.classes] == pytest.approx(
        [c.probability for c in from_rgb.classes]
    )


def test_server_errors_are_typed_and_name_the_field(client: GlassboxClient) -> None:
    with pytest.raises(InvalidArgumentError) as bad_image:
        client.predict(b"not an image", model="shapes")
    assert bad_image.value.field == "images[0].encoded"
    assert bad_image.value.code.name == "INVALID_ARGUMENT"
    assert "cannot decode" in bad_image.value.message
    assert bad_image.value.method == "Predict"
    with pytest.raises(NotFoundError) as missing:
        client.model("no-such-model")
    assert missing.value.field == "model"
    with pytest.raises(InvalidArgumentError) as too_big:
        client.predict(np.zeros((2, 2, 3), np.float32) + 2.0, model="shapes")
    assert too_big.value.field == "images[0].pixels.data"
    assert client.health() == "SERVING"
    assert client.models()[0].name == "shapes"


def test_bad_client_side_input_fails_before_sending(client: GlassboxClient) -> None:
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        client.predict(np.zeros((4, 4, 4), np.uint8), model="shapes")
    with pytest.raises(TypeError, match="path, bytes, a PIL image or a numpy array"):
        client.predict(12, model="shapes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown method 'gradcam'"):
        client.attribute(b"x", model="shapes", method="gradcam")
    with pytest.raises(ValueError, match="integrated_gradients has no parameter 'stepz'"):
        client.attribute(b"x", model="shapes", method="integrated_gradients", stepz=3)
    with pytest.raises(ValueError, match="baseline must be one of black, white, blurred"):
        client.attribute(b"x", model="shapes", method="integrated_gradients", baseline="grey")


def test_every_call_has_a_deadline(running: RunningServer, pixels: np.ndarray) -> None:
    # ≈ 4,000 occluded inputs take far longer than the client's default deadline of 50 ms (a predict
    # could finish inside even a 0.1 ms deadline, gRPC's timers being coarser than that). The deadline
    # reaches the server: once it knows the model's cost it refuses the call at once, naming the deadline
    with (
        GlassboxClient(running.address, timeout=0.05) as hurried,
        pytest.raises((DeadlineExceededError, ResourceExhaustedError)) as failed,
    ):
        hurried.attribute(pixels, model="shapes", method="occlusion", targets=[0], window=2, stride=1)
    if isinstance(failed.value, ResourceExhaustedError):
        assert "deadline" in str(failed.value)
    with GlassboxClient(running.address) as patient:
        assert patient.predict(pixels, model="shapes", timeout=20)[0].classes


def test_attribute_returns_arrays_and_images(client: GlassboxClient, png_file: Path) -> None:
    result = client.attribute(
        [png_file, png_file],
        model="shapes",
        method="integrated_gradients",
        targets=["circle", "triangle"],
        outputs=("map", "heatmap", "overlay"),
        steps=8,
        baseline="black",
    )
    assert result.method == "integrated_gradients" and result.model == "shapes"
    assert len(result.images) == 2 and all(len(image.attributions) == 2 for image in result.images)
    first = result.images[0].attributions[0]
    assert first.target is not None and first.target.label == "circle"
    assert result.images[0].attributions[1].target.label == "triangle"
    assert first.map is not None and first.map.shape == (64, 64) and first.map.dtype == np.float32
    assert np.abs(first.map).max() > 0
    assert first.convergence_delta is not None
    assert first.heatmap.size == (64, 64) and first.overlay.mode == "RGB"
    assert result.images[0].original_size == (64, 64)
    assert result.stats.backward_passes >= 2 * 2 * 8
    np.testing.assert_allclose(result.images[1].attributions[0].map, first.map, atol=1e-5)


def test_explain_writes_a_grad_cam_overlay_png(
    client: GlassboxClient, png_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "overlay.png"
    attribution = client.explain(png_file, model="shapes", method="grad_cam")
    attribution.overlay.save(out)
    with Image.open(out) as written:
        assert written.size == (64, 64) and written.mode == "RGB"
    assert io.BytesIO(out.read_bytes()).read(8) == b"\x89PNG\r\n\x1a\n"
    assert attribution.layer_map.shape == (32, 32), "the model's default_cam_layer features.6 is 32x32"
    assert attribution.heatmap.size == (64, 64) and attribution.map.min() >= 0
    top = client.predict(png_file, model="shapes")[0].top
    assert attribution.target.index == top.index
