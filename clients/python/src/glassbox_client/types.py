"""Plain, typed results: numpy arrays and PIL images instead of protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as attribution_pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from glassbox_client.images import array_from_tensor, image_from_png


def _enum_suffix(enum: object, value: int, prefix: str) -> str:
    """`BACKEND_TORCH` → "torch"; "" for the UNSPECIFIED value."""
    name = enum.Name(value)  # type: ignore[attr-defined]
    return "" if name.endswith("_UNSPECIFIED") else name.removeprefix(prefix).lower()


@dataclass(frozen=True)
class ModelVersionStatus:
    """Readiness of one version: state is "ready" or "failed" (then `error` says why)."""

    version: str
    state: str
    error: str


@dataclass(frozen=True)
class ModelSummary:
    """A model and its versions, oldest first."""

    name: str
    versions: list[ModelVersionStatus]

    @classmethod
    def from_proto(cls, summary: model_pb.ModelSummary) -> ModelSummary:
        versions = [
            ModelVersionStatus(v.version, _enum_suffix(model_pb.ModelState, v.state, "MODEL_STATE_"), v.error)
            for v in summary.versions
        ]
        return cls(summary.name, versions)


@dataclass(frozen=True)
class LayerInfo:
    """A layer usable by name; `cam_compatible` layers can be CAM targets."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    cam_compatible: bool


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to use one model version (see GetModel in the protos for each field)."""

    name: str
    version: str
    backend: str
    state: str
    error: str
    input_size: tuple[int, int]
    resize_policy: str
    crop_fraction: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: list[str]
    layers: list[LayerInfo]
    default_cam_layer: str
    supported_methods: list[str]
    description: str
    weights_digest: str
    datasets: list[str]
    explain_mode: str = ""  # "fast" or "exact" (model.toml [explain] mode); "" when not reported
    forward_engine: str = ""  # "torch", "torch-channels_last" or "onnxruntime"; "" when not ready

    @classmethod
    def from_proto(cls, info: model_pb.ModelInfo) -> ModelInfo:
        return cls(
            name=info.name,
            version=info.version,
            backend=_enum_suffix(model_pb.Backend, info.backend, "BACKEND_"),
            state=_enum_suffix(model_pb.ModelState, info.state, "MODEL_STATE_"),
            error=info.error,
            input_size=(info.input_height, info.input_width),
            resize_policy=_enum_suffix(model_pb.ResizePolicy, info.resize_policy, "RESIZE_POLICY_"),
            crop_fraction=info.crop_fraction,
            mean=tuple(info.normalization.mean),
            std=tuple(info.normalization.std),
            labels=list(info.labels),
            layers=[LayerInfo(x.name, x.kind, tuple(x.output_shape), x.cam_compatible) for x in info.layers],
            default_cam_layer=info.default_cam_layer,
            supported_methods=list(info.supported_methods),
            description=info.description,
            weights_digest=info.weights_digest,
            datasets=list(info.datasets),
            explain_mode=_enum_suffix(model_pb.ExplainMode, info.explain_mode, "EXPLAIN_MODE_"),
            forward_engine=info.forward_engine,
        )


@dataclass(frozen=True)
class ClassScore:
    """One class: its index into the labels, label, softmax probability in [0, 1] and logit."""

    index: int
    label: str
    probability: float
    logit: float

    @classmethod
    def from_proto(cls, score: model_pb.ClassScore) -> ClassScore:
        return cls(score.index, score.label, score.probability, score.logit)


@dataclass(frozen=True)
class Prediction:
    """The top classes of one image, most probable first, and the model version that answered."""

    model: str
    version: str
    classes: list[ClassScore]

    @property
    def top(self) -> ClassScore:
        return self.classes[0]


def predictions_from_proto(response: model_pb.PredictResponse) -> list[Prediction]:
    return [
        Prediction(response.model, response.version, [ClassScore.from_proto(c) for c in p.classes])
        for p in response.predictions
    ]


@dataclass(frozen=True)
class Attribution:
    """One map for one (image, target). Arrays are float32 (segments int64); images are PIL RGB.

    `map` is signed, [H, W] (or [3, H, W] without aggregation); `heatmap` and `overlay` are the
    server's renderings when they were asked for. Method extras are None when not produced.
    """

    target: ClassScore | None
    map: np.ndarray | None
    heatmap: PILImage.Image | None
    overlay: PILImage.Image | None
    layer_map: np.ndarray | None
    convergence_delta: float | None
    segments: np.ndarray | None
    segment_weights: np.ndarray | None
    segmentation: str | None  # LIME/KernelSHAP: "slic", or "grid" where SLIC found a single superpixel

    @classmethod
    def from_proto(cls, a: attribution_pb.Attribution) -> Attribution:
        return cls(
            target=ClassScore.from_proto(a.target) if a.HasField("target") else None,
            map=array_from_tensor(a.map),
            heatmap=image_from_png(a.heatmap_png),
            overlay=image_from_png(a.overlay_png),
            layer_map=array_from_tensor(a.layer_map),
            convergence_delta=a.convergence_delta if a.HasField("convergence_delta") else None,
            segments=array_from_tensor(a.segments),
            segment_weights=array_from_tensor(a.segment_weights),
            segmentation=_enum_suffix(attribution_pb.Segmentation, a.segmentation, "SEGMENTATION_") or None,
        )

    def _repr_png_(self) -> bytes | None:
        """Jupyter shows the overlay (else the heatmap) when the server rendered one."""
        from glassbox_client.display import png_bytes

        picture = self.overlay or self.heatmap
        return None if picture is None else png_bytes(picture)

    def _repr_html_(self) -> str | None:
        from glassbox_client.display import attribution_pictures, html_pictures

        pictures = attribution_pictures(self)
        return html_pictures(pictures) if pictures else None


@dataclass(frozen=True)
class ImageAttributions:
    """The maps of one image, one per target, and the image's size as sent (height, width)."""

    attributions: list[Attribution]
    original_size: tuple[int, int]


@dataclass(frozen=True)
class AttributionStats:
    """Work done: images evaluated forward and backward, and compute seconds."""

    forward_passes: int
    backward_passes: int
    compute_seconds: float


@dataclass(frozen=True)
class AttributionResult:
    """The answer to one attribute call: `images[i].attributions[j]` is image i, target j."""

    model: str
    version: str
    method: str
    images: list[ImageAttributions]
    stats: AttributionStats

    @classmethod
    def from_proto(cls, response: attribution_pb.AttributeResponse) -> AttributionResult:
        images = [
            ImageAttributions(
                [Attribution.from_proto(a) for a in image.attributions],
                (image.original_height, image.original_width),
            )
            for image in response.images
        ]
        stats = AttributionStats(
            response.stats.forward_passes, response.stats.backward_passes, response.stats.compute_seconds
        )
        return cls(response.model, response.version, response.method, images, stats)

    def _repr_png_(self) -> bytes | None:
        """Jupyter shows every rendered picture of the result side by side."""
        from glassbox_client.display import picture_strip, png_bytes, result_pictures

        strip = picture_strip([picture for _, picture in result_pictures(self)])
        return None if strip is None else png_bytes(strip)

    def _repr_html_(self) -> str | None:
        from glassbox_client.display import html_pictures, result_pictures

        pictures = result_pictures(self)
        title = f"{self.method} on {self.model} version {self.version}"
        return html_pictures(pictures, title) if pictures else None
