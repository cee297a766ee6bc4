"""Helpers shared by the gradient and CAM method tests: a model repository with seeded weights, a server
on it, requests over real gRPC, and the same networks in this process for the reference implementations.

The reference networks are copies of the served ones with in-place ReLUs made out-of-place and
parameters requiring gradients, because Captum's ReLU hooks fail on in-place ReLUs (Captum #973) and
pytorch-grad-cam back-propagates from a loss that needs a graph; the function computed is the same.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from glassbox.core.model_config import load_config
from glassbox.demo.shapes import generate
from glassbox.methods.service import AttributionOutcome
from glassbox.models.architectures import build_architecture
from glassbox.models.loaders import load_model
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, tensor_pb2
from safetensors.torch import load_file, save_file

from support.model_repository import write_model_version

IMAGES = generate(3, seed=5).images
"""Three demo images [3, 3, 64, 64] in [0, 1]."""

LABELS = 6
"""Classes of every test model (support.model_repository.write_model_version's six shapes)."""
TARGETS = (1, 4)
TOLERANCE = 1e-4
"""Largest difference allowed from a reference, as a fraction of the reference map's largest |value|."""

CAM_LAYERS = {
    "shapes": "features.14",
    "resnet": "layer4",
    "densenet": "features.denseblock3",
    "vgg": "features.19",
    "vit": "encoder.layers.encoder_layer_1.ln_1",
}


ARCHITECTURES = {
    "shapes": "glassbox.shapes_cnn",
    "resnet": "resnet18",
    "densenet": "densenet121",
    "vgg": "vgg11",
    "vit": "glassbox.tiny_vit",
}


def write_repository(root: Path, names: tuple[str, ...] = ("shapes", "resnet"), *, explain: str = "") -> Path:
    """Some of: shapes (the demo CNN: in-place ReLUs, BN), resnet (torchvision resnet18: residuals, a
    ReLU module called twice per block), densenet (torchvision densenet121: in-place ReLUs, feature maps
    concatenated, a functional ReLU after the last norm; its 4×4 denseblock3 is the CAM layer at 64×64),
    vgg (torchvision vgg11: no BatchNorm, dropout, 130 M parameters, most in the first classifier layer),
    vit (a tiny torchvision ViT); seeded weights, 64×64 inputs. `explain`: more `[explain]` lines.
    Seed 5 gives every image's top-2 classes a Grad-CAM that is not all zero (not so for every seed)."""
    for name in names:
        scale = 20.0 if name == "shapes" else 1.0
        write_model_version(
            root,
            name,
            "1",
            architecture=ARCHITECTURES[name],
            seed=5,
            logit_scale=scale,
            extra_toml=_explain(name) + explain,
        )
    return root


ONNX_CAM_LAYER = "/features/features.14/Relu_output_0"
"""The demo CNN's CAM layer (features.14) as its ONNX export names that layer's output."""


def write_shared_repository(root: Path) -> Path:
    """The repository the method tests share (written once per session): every model of `ARCHITECTURES`
    as `write_repository` writes it, and the demo CNN exported to ONNX with the same seeded weights
    (`shapes-onnx`, for the gradient-free methods on a graph the server cannot differentiate)."""
    write_repository(root, tuple(ARCHITECTURES))
    write_model_version(
        root,
        "shapes-onnx",
        "1",
        fmt="onnx",
        seed=5,
        logit_scale=20.0,
        extra_toml=f'[explain]\ndefault_cam_layer = "{ONNX_CAM_LAYER}"\n',
    )
    return root


def write_calibrated_version(
    root: Path,
    name: str,
    architecture: str,
    *,
    explain: str = "",
    logit_scale: float = 300.0,
    size: tuple[int, int] = (64, 64),
) -> Path:
    """A seeded random-weight version whose BatchNorm statistics are those of 16 random images:
    a random mobilenet_v3_small or efficientnet_b0 with the default statistics shrinks its activations
    layer by layer to logits of ~1e-8, where every map is float noise. `logit_scale` then spreads the
    logits (~0.03 after calibration) as a trained model's (~10)."""
    folder = write_model_version(
        root,
        name,
        "1",
        architecture=architecture,
        seed=5,
        logit_scale=logit_scale,
        extra_toml=explain,
        size=size,
    )
    net = build_architecture(architecture, LABELS)
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: the statistics of exactly these images
    pixels = torch.rand(16, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.train()((pixels - 0.5) / 0.25)
    save_file(
        {k: v.contiguous() for k, v in net.eval().state_dict().items()}, str(folder / "model.safetensors")
    )
    return folder


def _explain(name: str) -> str:
    return f'[explain]\ndefault_cam_layer = "{CAM_LAYERS[name]}"\n'


def reference_network(root: Path, name: str, *, input_gradients: bool = False) -> torch.nn.Module:
    """The served network (pixels → logits) with out-of-place ReLUs and trainable parameters.

    `input_gradients`: the network the input-gradient methods run on (BatchNorm folded into the
    convolutions). It equals the trained network to 1e-12 in float64 (tests/backends), but in float32 a
    rounding-level change flips the odd ReLU near zero along a path of inputs, which moves an integrated
    gradient by up to ~2% of its maximum on these random-weight models; so the references run on the
    same network as the method, as a comparison of algorithms must.
    """
    folder = root / name / "1"
    model = load_model(name, "1", folder, load_config(folder), device=torch.device("cpu"))
    network = copy.deepcopy(model.input_gradient_network() if input_gradients else model.differentiable())
    for module in network.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return network.requires_grad_(True).eval()


class UserNetwork(torch.nn.Module):
    """pixels → logits as a user writes it: the model's normalisation (mean 0.5, std 0.25), then the net."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net((pixels - 0.5) / 0.25)


def user_network(
    root: Path, name: str, architecture: str, dtype: torch.dtype = torch.float32
) -> torch.nn.Module:
    """The network as its user has it: freshly built from the architecture with the served weights, in
    the default (contiguous) layout, unfolded; nothing of the server's copy. ReLUs made out-of-place for
    Captum's hooks (the function is the same)."""
    net = build_architecture(architecture, LABELS)
    net.load_state_dict(load_file(str(root / name / "1" / "model.safetensors")))
    for module in net.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return UserNetwork(net).to(dtype).requires_grad_(True).eval()


def image_message(pixels: torch.Tensor) -> tensor_pb2.Image:
    array = pixels.numpy().astype(np.float32)
    return tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(
            dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=list(array.shape), data=array.tobytes()
        )
    )


def request(
    model: str,
    images: torch.Tensor = IMAGES,
    *,
    targets: tuple[int, ...] | None = TARGETS,
    aggregation: int = pb.AGGREGATION_NONE,
    **method: object,
) -> pb.AttributeRequest:
    """An AttributeRequest for raw maps of `images` [B, 3, H, W] and the given class targets."""
    message = pb.AttributeRequest(
        model=model,
        images=[image_message(image) for image in images],
        output=pb.OutputOptions(map=True, aggregation=aggregation),
        **method,
    )
    if targets is not None:
        message.targets.class_indices.extend(targets)
    return message


def attribute(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, message: pb.AttributeRequest
) -> pb.AttributeResponse:
    return stub.Attribute(message, timeout=120)


def tensor(message: tensor_pb2.Tensor) -> np.ndarray:
    dtype = {tensor_pb2.DATA_TYPE_FLOAT32: np.float32, tensor_pb2.DATA_TYPE_INT64: np.int64}[message.dtype]
    return np.frombuffer(message.data, dtype=dtype).reshape(tuple(message.shape))


def maps(response: pb.AttributeResponse, field: str = "map") -> np.ndarray:
    """The response's maps as [targets, images, ...] (so maps[j] lines up with a reference for target j)."""
    per_image = [[tensor(getattr(a, field)) for a in image.attributions] for image in response.images]
    return np.stack([np.stack(row) for row in per_image], axis=1)


def outcome_maps(outcome: AttributionOutcome, field: str = "map") -> np.ndarray:
    """An in-process run's maps (`MethodRunner.attribute`) as [targets, images, ...], as `maps` lays out a
    response's."""
    per_image = [[getattr(a, field) for a in image.attributions] for image in outcome.images]
    return np.stack([np.stack(row) for row in per_image], axis=1)


def relative_error(ours: np.ndarray, reference: torch.Tensor | np.ndarray) -> float:
    """max |ours − reference| / max |reference|; the reference must not be all zero (a vacuous check)."""
    expected = reference.detach().numpy() if isinstance(reference, torch.Tensor) else reference
    scale = float(np.abs(expected).max())
    assert scale > 0, "the reference map is all zero: the comparison would prove nothing"
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    return float(np.abs(ours - expected).max()) / scale
