"""AttributionService over real gRPC on the shipped demo models: outputs (raw maps, PNG heatmaps and
overlays, aggregation modes, resampling to the original size), targets (indices, labels, top-k, per
image), bad input (a clear error naming the field, and the server keeps serving), cancellation by a
client deadline, isolation of concurrent calls on one model, and flat memory over 1,000 calls."""

from __future__ import annotations

import gc
import io
import resource
import threading
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest
import torch
from glassbox import render
from glassbox.backends.torch_backend import TorchModel
from glassbox.demo.shapes import CLASSES, generate
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, tensor_pb2
from PIL import Image
from support.servers import RunningServer

BATCH = generate(3, seed=21)
IMAGES = BATCH.images


@pytest.fixture(scope="module")
def running(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(cache={"enabled": False})


@pytest.fixture(scope="module")
def stub(running: RunningServer) -> attribution_service_pb2_grpc.AttributionServiceStub:
    return attribution_service_pb2_grpc.AttributionServiceStub(running.channel)


def pixels(image: torch.Tensor) -> tensor_pb2.Image:
    array = image.numpy().astype(np.float32)
    return tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(
            dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=list(array.shape), data=array.tobytes()
        )
    )


def encoded(image: torch.Tensor, size: tuple[int, int]) -> tensor_pb2.Image:
    """The image as a PNG of `size` (width, height)."""
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).resize(size, Image.BILINEAR).save(buffer, format="PNG")
    return tensor_pb2.Image(encoded=buffer.getvalue())


def request(images: torch.Tensor = IMAGES, model: str = "shapes", **fields: object) -> pb.AttributeRequest:
    fields.setdefault("saliency", pb.SaliencyParams())
    return pb.AttributeRequest(model=model, images=[pixels(image) for image in images], **fields)


def array(message: tensor_pb2.Tensor) -> np.ndarray:
    assert message.dtype == tensor_pb2.DATA_TYPE_FLOAT32
    return np.frombuffer(message.data, dtype=np.float32).reshape(tuple(message.shape))


def png(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image)


def test_defaults_explain_the_top_class_with_a_signed_map(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    response = stub.Attribute(request(), timeout=30)
    assert (response.model, response.version, response.method) == ("shapes", "1", "saliency")
    for image, label in zip(response.images, BATCH.labels, strict=True):
        (only,) = image.attributions
        assert only.target.index == int(label) and only.target.label == CLASSES[int(label)]
        assert only.target.probability > 0.5
        values = array(only.map)
        assert values.shape == (64, 64) and values.min() < 0 < values.max()
        assert not only.heatmap_png and not only.overlay_png
        assert (image.original_height, image.original_width) == (64, 64)
    assert response.stats.forward_passes == 3 and response.stats.backward_passes == 3
    assert response.stats.compute_seconds > 0


def test_aggregations_reduce_the_channels(stub: attribution_service_pb2_grpc.AttributionServiceStub) -> None:
    def map_with(aggregation: int) -> np.ndarray:
        output = pb.OutputOptions(map=True, aggregation=aggregation)
        return array(
            stub.Attribute(request(IMAGES[:1], output=output), timeout=30).images[0].attributions[0].map
        )

    channels = map_with(pb.AGGREGATION_NONE)
    assert channels.shape == (3, 64, 64)
    np.testing.assert_allclose(map_with(pb.AGGREGATION_SUM), channels.sum(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(map_with(pb.AGGREGATION_ABS_MAX), np.abs(channels).max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(map_with(pb.AGGREGATION_L2), np.sqrt((channels**2).sum(axis=0)), rtol=1e-5)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("grad_cam", pb.GradCamParams()),
        ("smoothgrad", pb.SmoothGradParams(samples=8)),
        ("integrated_gradients", pb.IntegratedGradientsParams(steps=16)),
        ("guided_grad_cam", pb.GuidedGradCamParams()),
    ],
)
def test_pngs_are_readable_pictures_of_the_map(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, method: str, params: object
) -> None:
    output = pb.OutputOptions(map=True, heatmap_png=True, overlay_png=True, aggregation=pb.AGGREGATION_NONE)
    response = stub.Attribute(
        request(IMAGES[:1], output=output, saliency=None, **{method: params}), timeout=60
    )
    attribution = response.images[0].attributions[0]
    heat, overlay = png(attribution.heatmap_png), png(attribution.overlay_png)
    assert heat.shape == overlay.shape == (64, 64, 3)
    assert heat.reshape(-1, 3).std(axis=0).max() > 10, "the heatmap is flat"
    values = array(attribution.map)
    # the pictures show |max| over the channels of a per-channel map, a one-channel map as it is
    shown = np.abs(values).max(axis=0) if values.ndim == 3 else values
    strongest = np.unravel_index(np.abs(shown).argmax(), shown.shape)
    weakest = np.unravel_index(np.abs(shown).argmin(), shown.shape)
    grey = IMAGES[0].permute(1, 2, 0).numpy() @ np.array(render.LUMA, dtype=np.float32)
    background = np.round(255 * (render.BACKGROUND_FLOOR + render.BACKGROUND_RANGE * grey))
    # the overlay shows the darkened grey image where the map is zero (opacity alpha · sqrt of the
    # scaled |value|), the map where it is strongest
    faint = np.abs(shown[weakest]) / np.percentile(np.abs(shown), render.DEFAULT_CLIP_PERCENTILE)
    allowed = 255 * render.DEFAULT_OVERLAY_ALPHA * np.sqrt(faint) + 1
    assert np.abs(overlay[weakest] - background[weakest]).max() <= allowed
    assert np.abs(overlay[strongest].astype(float) - background[strongest]).max() > 60
    if method == "grad_cam":
        assert array(attribution.layer_map).shape == (8, 8)
    if method == "integrated_gradients":
        assert abs(attribution.convergence_delta) < 0.05 * abs(attribution.target.logit)


def test_pictures_of_gradient_maps_show_abs_max_while_the_raw_map_keeps_its_sign(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    def attribution(**options: object) -> pb.TargetAttribution:
        output = pb.OutputOptions(map=True, heatmap_png=True, **options)
        return stub.Attribute(request(IMAGES[:1], output=output), timeout=60).images[0].attributions[0]

    default = attribution()
    raw = array(default.map)
    assert (raw < 0).any(), "the raw map (channel sum) keeps its sign"
    absolute = attribution(picture_aggregation=pb.AGGREGATION_ABS_MAX)
    signed = attribution(picture_aggregation=pb.AGGREGATION_SUM)
    assert default.heatmap_png == absolute.heatmap_png != signed.heatmap_png
    np.testing.assert_array_equal(array(signed.map), raw)
    # |max| is non-negative: inferno, whose darkest colour is near black; the signed picture is
    # diverging, whose middle (zero) is near white
    assert png(absolute.heatmap_png).min(axis=(0, 1)).max() < 30
    assert png(signed.heatmap_png).max(axis=(0, 1)).min() > 200


def test_a_colour_bar_names_the_method_below_an_enlarged_picture(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    output = pb.OutputOptions(heatmap_png=True, overlay_png=True, colour_bar=True)
    plain_output = pb.OutputOptions(heatmap_png=True, overlay_png=True)
    with_bar = stub.Attribute(request(IMAGES[:1], output=output), timeout=60).images[0].attributions[0]
    plain = stub.Attribute(request(IMAGES[:1], output=plain_output), timeout=60).images[0].attributions[0]
    figure, picture = png(with_bar.heatmap_png), png(plain.heatmap_png)
    assert figure.shape[1] == 256 and figure.shape[0] > 256
    np.testing.assert_array_equal(figure[:256:4, ::4], picture)  # the picture, enlarged 4×
    strip = figure[256:]
    assert (strip < 100).all(axis=2).any(), "the caption and scale are dark text"
    assert png(with_bar.overlay_png).shape == figure.shape


def test_maps_and_overlays_can_come_at_the_original_size(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    message = pb.AttributeRequest(
        model="shapes",
        images=[encoded(IMAGES[0], (160, 120))],
        output=pb.OutputOptions(map=True, heatmap_png=True, overlay_png=True, original_size=True),
        grad_cam=pb.GradCamParams(),
    )
    image = stub.Attribute(message, timeout=30).images[0]
    assert (image.original_height, image.original_width) == (120, 160)
    attribution = image.attributions[0]
    assert array(attribution.map).shape == (120, 160)
    assert png(attribution.heatmap_png).shape == png(attribution.overlay_png).shape == (120, 160, 3)
    at_input = (
        stub.Attribute(
            pb.AttributeRequest(
                model="shapes", images=[encoded(IMAGES[0], (160, 120))], grad_cam=pb.GradCamParams()
            ),
            timeout=30,
        )
        .images[0]
        .attributions[0]
    )
    resampled = torch.nn.functional.interpolate(
        torch.from_numpy(array(at_input.map).copy())[None, None], size=(120, 160), mode="bilinear"
    )[0, 0].numpy()
    np.testing.assert_allclose(array(attribution.map), resampled, rtol=1e-5, atol=1e-6)


def test_targets_by_index_label_top_k_and_per_image(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    def targets(**fields: object) -> list[list[int]]:
        response = stub.Attribute(request(**fields), timeout=30)
        return [[a.target.index for a in image.attributions] for image in response.images]

    assert targets(targets=pb.TargetSpec(class_indices=[4, 0])) == [[4, 0]] * 3
    assert targets(targets=pb.TargetSpec(labels=["star", "circle"])) == [[4, 0]] * 3
    top = targets(targets=pb.TargetSpec(top_k=3))
    assert [row[0] for row in top] == [int(label) for label in BATCH.labels] and all(
        len(set(r)) == 3 for r in top
    )
    per_image = [
        pb.TargetSpec(class_indices=[1]),
        pb.TargetSpec(labels=["ring", "cross"]),
        pb.TargetSpec(top_k=2),
    ]
    assert targets(image_targets=per_image)[:2] == [[1], [5, 3]]
    response = stub.Attribute(request(targets=pb.TargetSpec(class_indices=[4, 0, 2])), timeout=30)
    assert response.stats.forward_passes == 3 and response.stats.backward_passes == 9


BAD_REQUESTS = [
    ("no method", request(saliency=None), "method"),
    ("class out of range", request(targets=pb.TargetSpec(class_indices=[6])), "targets.class_indices[0]"),
    ("negative class", request(targets=pb.TargetSpec(class_indices=[-1])), "targets.class_indices[0]"),
    ("unknown label", request(targets=pb.TargetSpec(labels=["hexagon"])), "targets.labels[0]"),
    ("repeated target", request(targets=pb.TargetSpec(class_indices=[1, 1])), "targets.class_indices"),
    ("two kinds of target", request(targets=pb.TargetSpec(class_indices=[1], top_k=2)), "targets"),
    ("top_k too large", request(targets=pb.TargetSpec(top_k=7)), "targets.top_k"),
    ("image_targets count", request(image_targets=[pb.TargetSpec(top_k=1)]), "image_targets"),
    (
        "negative noise",
        request(saliency=None, smoothgrad=pb.SmoothGradParams(noise_fraction=-0.1)),
        "smoothgrad.noise_fraction",
    ),
    ("zero samples", request(saliency=None, smoothgrad=pb.SmoothGradParams(samples=0)), "smoothgrad.samples"),
    (
        "zero steps",
        request(saliency=None, integrated_gradients=pb.IntegratedGradientsParams(steps=0)),
        "integrated_gradients.steps",
    ),
    (
        "unknown layer",
        request(saliency=None, grad_cam=pb.GradCamParams(layer="features.99")),
        "grad_cam.layer",
    ),
    (
        "overlay alpha",
        request(output=pb.OutputOptions(overlay_png=True, overlay_alpha=1.5)),
        "output.overlay_alpha",
    ),
    ("unknown enum", request(output=pb.OutputOptions(aggregation=42)), "output.aggregation"),
    ("no images", pb.AttributeRequest(model="shapes", saliency=pb.SaliencyParams()), "images"),
]


@pytest.mark.parametrize(("case", "message", "field"), BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_names_the_field_and_the_server_keeps_serving(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    case: str,
    message: pb.AttributeRequest,
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.Attribute(message, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert error.value.details().startswith(f"{field}:"), error.value.details()
    assert len(stub.Attribute(request(IMAGES[:1]), timeout=30).images) == 1


def test_unknown_models_and_gradients_of_onnx_models_are_refused(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.Attribute(request(model="no-such-model"), timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as error:
        stub.Attribute(request(model="shapes-onnx"), timeout=30)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.value.details().startswith("method:") and "occlusion" in error.value.details()
    occluded = stub.Attribute(
        request(model="shapes-onnx", saliency=None, occlusion=pb.OcclusionParams()), timeout=60
    )
    assert array(occluded.images[0].attributions[0].map).shape == (64, 64)


def test_a_client_deadline_or_cancellation_stops_the_computation(
    start_server: Callable[..., RunningServer],
) -> None:
    """A 512-sample SmoothGrad of 8 images takes many seconds; after a 0.3 s deadline, or once its client
    cancels it, the server must stop within a batch, so the compute thread then uses no CPU (measured per
    thread: the machine may be busy). A fresh server has not measured the model's cost yet, so admission
    cannot refuse the call for its deadline and the computation starts."""
    fresh = start_server(cache={"enabled": False})
    stub = attribution_service_pb2_grpc.AttributionServiceStub(fresh.channel)
    big = request(generate(8, seed=3).images, saliency=None, smoothgrad=pb.SmoothGradParams(samples=512))
    with pytest.raises(grpc.RpcError) as error:
        stub.Attribute(big, timeout=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _assert_compute_stops()

    call = stub.Attribute.future(big, timeout=600)  # admitted: its cost is known now, but so is its time
    time.sleep(0.5)
    assert not call.done()
    call.cancel()
    _assert_compute_stops()
    assert len(stub.Attribute(request(IMAGES[:1]), timeout=30).images) == 1


def _assert_compute_stops() -> None:
    time.sleep(1.0)  # the computation notices at its next batch
    before = _compute_threads_cpu_seconds()
    time.sleep(1.0)
    assert _compute_threads_cpu_seconds() - before < 0.05, "the computation went on after the call ended"


def _compute_threads_cpu_seconds() -> float:
    """CPU time used so far by the compute schedulers' threads (this process: every server's)."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith("glassbox-compute") and thread.ident is not None:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, ProcessLookupError):
                continue
    return total


def test_concurrent_calls_never_see_each_others_hooks(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    """Guided backprop (per-call ReLU rules) and Grad-CAM (per-call layer hooks) run alongside saliency on the
    same model: every result equals the one computed alone."""
    calls = {
        "saliency": request(saliency=pb.SaliencyParams()),
        "guided": request(saliency=None, guided_backprop=pb.GuidedBackpropParams()),
        "cam": request(saliency=None, grad_cam=pb.GradCamParams()),
    }
    alone = {name: stub.Attribute(message, timeout=30) for name, message in calls.items()}
    mismatches: list[str] = []

    def repeat(name: str) -> None:
        try:
            for _ in range(12):
                response = stub.Attribute(calls[name], timeout=60)
                for got, expected in zip(response.images, alone[name].images, strict=True):
                    if got.attributions[0].map.data != expected.attributions[0].map.data:
                        mismatches.append(name)
        except grpc.RpcError as error:
            mismatches.append(f"{name}: {error.code()}")

    threads = [threading.Thread(target=repeat, args=(name,)) for name in calls for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not mismatches
    guided = array(alone["guided"].images[0].attributions[0].map)
    assert not np.array_equal(guided, array(alone["saliency"].images[0].attributions[0].map))


def test_memory_is_flat_over_a_thousand_calls(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, running: RunningServer
) -> None:
    small = request(IMAGES[:1], output=pb.OutputOptions(map=True, heatmap_png=True))
    guided = request(IMAGES[:1], saliency=None, guided_backprop=pb.GuidedBackpropParams())
    for _ in range(100):
        stub.Attribute(small, timeout=30)
    gc.collect()
    warm = _rss_bytes()
    for i in range(1000):
        stub.Attribute(guided if i % 10 == 0 else small, timeout=30)
    gc.collect()
    assert _rss_bytes() - warm < 20 * 2**20, "resident memory grew by more than 20 MiB over 1,000 calls"
    model = running.server.context.repository.get("shapes")
    assert isinstance(model, TorchModel)
    leftover = [name for name, m in model.module.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    assert not leftover, f"hooks left behind on {leftover}"


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()
