"""The CAM family of pytorch-grad-cam 1.5.7 over gRPC: HiResCAM, Grad-CAM element-wise, XGrad-CAM,
LayerCAM, Eigen-CAM, Eigen-Grad-CAM, Ablation-CAM, FullGrad, KPCA-CAM, FEM and Shapley-CAM. Each map,
min-max scaled as pytorch-grad-cam scales its output, equals the library's within 1e-4 of the maximum,
on the demo CNN, resnet18 and densenet121 (in-place ReLUs, concatenation); the gradient-free CAMs also
on an ONNX export at the same tensor. Target-independent maps share their passes; bad parameters are
refused naming `<method>.<field>`, a backend that cannot run a method with FAILED_PRECONDITION."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.core.model_config import load_config
from glassbox.models.architectures import build_architecture
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, model_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FullGrad,
    GradCAMElementWise,
    HiResCAM,
    LayerCAM,
    ShapleyCAM,
    XGradCAM,
)
from pytorch_grad_cam.fem import FEM
from pytorch_grad_cam.kpca_cam import KPCA_CAM
from safetensors.torch import load_file
from support.cam_references import grad_cam_maps, min_max
from support.gradient_harness import CAM_LAYERS, IMAGES, TOLERANCE, attribute, maps, request
from support.gradient_harness import write_repository as write_models
from support.servers import RunningServer

os.environ.setdefault("TQDM_DISABLE", "1")  # Ablation-CAM draws progress bars otherwise
TWO = IMAGES[:2]
GRADIENT_FREE = ("eigen_cam", "fem", "kpca_cam")
NEW_METHODS = (
    "ablation_cam",
    "eigen_cam",
    "eigen_grad_cam",
    "fem",
    "full_grad",
    "grad_cam_element_wise",
    "hires_cam",
    "kpca_cam",
    "layer_cam",
    "shapley_cam",
    "xgrad_cam",
)

REFERENCES: dict[str, tuple[Callable[..., object], object]] = {
    "hires_cam": (HiResCAM, pb.HiResCamParams()),
    "grad_cam_element_wise": (GradCAMElementWise, pb.GradCamElementWiseParams()),
    "xgrad_cam": (XGradCAM, pb.XGradCamParams()),
    "layer_cam": (LayerCAM, pb.LayerCamParams()),
    "eigen_cam": (EigenCAM, pb.EigenCamParams()),
    "eigen_grad_cam": (EigenGradCAM, pb.EigenGradCamParams()),
    "shapley_cam": (ShapleyCAM, pb.ShapleyCamParams()),
    "full_grad": (FullGrad, pb.FullGradParams()),
    "fem": (FEM, pb.FemParams()),
    "kpca_cam": (KPCA_CAM, pb.KpcaCamParams()),
    "kpca_cam_rbf": (
        functools.partial(KPCA_CAM, kernel="rbf", gamma=0.01),
        pb.KpcaCamParams(kernel=pb.KPCA_KERNEL_RBF, gamma=0.01),
    ),
    "fem_k1": (functools.partial(FEM, k=1), pb.FemParams(k=1.0)),
}


MODELS = ("shapes", "resnet", "densenet")
HOOKED = {"hires_cam", "grad_cam_element_wise", "xgrad_cam", "layer_cam", "eigen_grad_cam", "shapley_cam"}
"""The methods that run on `TorchModel.hooked_network`."""
DOUBLE = {"kpca_cam", "kpca_cam_rbf"}
"""pytorch-grad-cam's KPCA-CAM runs scikit-learn's KernelPCA in the activations' dtype: in float32 it is
1e-3 of the maximum from its own float64 result on the demo CNN's 64 positions, so the reference runs on
a float64 copy of the network (Glassbox computes the kernel PCA in float64)."""
MODELS_OF = {
    "fem": ("shapes",),
    "fem_k1": ("resnet", "densenet"),
    "kpca_cam": ("shapes", "densenet"),
    "kpca_cam_rbf": ("resnet",),
}
"""FEM's default k = 2 needs more positions than resnet18's 2×2 `layer4` (no value of 4 can be two
standard deviations above their mean: at most √3) or densenet's 4×4 `denseblock3` has above it on these
images, which gives an all-zero map there: k = 1 runs on those. KPCA-CAM's kernels split the same way."""


@pytest.fixture(scope="module")
def networks(repository: Path) -> dict[str, torch.nn.Module]:
    """The served torch networks (pixels → logits, the server's memory layout) as
    `gradient_harness.reference_network` makes them (out-of-place ReLUs, trainable parameters), built
    without the repository's forward-engine selection, which would time every engine again:
    `<model>/plain` as loaded, `<model>/hooked` the network the gradient CAMs run on (BatchNorm folded
    where that leaves the CAM layer's output unchanged). The references run on the network the method
    ran on: XGrad-CAM divides by each channel's activation sum, which is near 0 for some of densenet's
    channels, so a float32 rounding of the fold moves its map by 1e-3 of the maximum."""
    out = {}
    for name in ("shapes", "resnet", "densenet"):
        folder = repository / name / "1"
        config = load_config(folder)
        assert config.architecture is not None
        net = build_architecture(config.architecture, len(config.labels), **config.architecture_args)
        net.load_state_dict(load_file(str(folder / config.weights)))
        served = TorchModel(name, "1", config, "", net, torch.device("cpu"))
        for kind, network in (
            ("plain", served.differentiable()),
            ("hooked", served.hooked_network(CAM_LAYERS[name])[0]),
        ):
            network = copy.deepcopy(network)
            for module in network.modules():
                if isinstance(module, torch.nn.ReLU):
                    module.inplace = False
            out[f"{name}/{kind}"] = network.requires_grad_(True).eval()
    return out


def top2(response: pb.AttributeResponse) -> list[list[int]]:
    """[target j][image i] class indices of a top-2 response."""
    return [[image.attributions[j].target.index for image in response.images] for j in range(2)]


def top2_request(model: str, images: object = TWO, **method: object) -> pb.AttributeRequest:
    message = request(model, images, targets=None, **method)
    message.targets.top_k = 2
    return message


def method_field(case: str) -> str:
    return case.removesuffix("_rbf").removesuffix("_k1")


def assert_equal_to_reference(
    response: pb.AttributeResponse,
    reference: Callable[..., object],
    network: object,
    layer: object,
    images: object,
    *,
    passes: int = 2,
) -> None:
    ours = maps(response)
    for j, targets in enumerate(top2(response)[:passes]):
        expected = grad_cam_maps(reference, network, layer, images, targets)
        assert np.abs(min_max(ours[j]) - expected).max() <= TOLERANCE, j


@pytest.mark.parametrize(
    ("case", "model"), [(case, model) for case in sorted(REFERENCES) for model in MODELS_OF.get(case, MODELS)]
)
def test_equals_pytorch_grad_cam(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    networks: dict[str, torch.nn.Module],
    model: str,
    case: str,
) -> None:
    reference, params = REFERENCES[case]
    response = attribute(stub, top2_request(model, **{method_field(case): params}))
    network = networks[f"{model}/{'hooked' if method_field(case) in HOOKED else 'plain'}"]
    images = TWO
    if case in DOUBLE:
        network, images = copy.deepcopy(network).double(), TWO.double()
    assert_equal_to_reference(
        response, reference, network, network.net.get_submodule(CAM_LAYERS[model]), images
    )


@pytest.mark.parametrize(
    ("model", "layer", "images"),
    [
        ("shapes", "", 2),
        ("resnet", "", 2),  # layer4 ends in a ReLU: channels ablated to 0 (the paper)
        ("resnet", "layer3.1.conv2", 1),  # negative values: minimum − 1e7; the prefix is shared
        ("densenet", "features.denseblock3.denselayer1.relu2", 1),  # concatenation: no shared prefix
    ],
)
def test_ablation_cam_equals_pytorch_grad_cam(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    networks: dict[str, torch.nn.Module],
    model: str,
    layer: str,
    images: int,
) -> None:
    response = attribute(
        stub, top2_request(model, IMAGES[:images], ablation_cam=pb.AblationCamParams(layer=layer))
    )
    network = networks[f"{model}/plain"]
    module = network.net.get_submodule(layer or CAM_LAYERS[model])
    channels = next(p for p in module.parameters()).shape[0] if layer == "layer3.1.conv2" else None
    # pytorch-grad-cam lowers the ablation value by 1e7 per row of its batch on layers with negative
    # values; with batch_size=1 every row gets the first row's value, which is the server's.
    reference = functools.partial(AblationCAM, batch_size=1 if channels else 32)
    assert_equal_to_reference(response, reference, network, module, IMAGES[:images], passes=1)
    assert response.stats.forward_passes >= images  # the ablated passes are counted too


@pytest.mark.parametrize("case", GRADIENT_FREE)
def test_gradient_free_cams_run_on_an_onnx_model(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, networks: dict[str, torch.nn.Module], case: str
) -> None:
    reference, params = REFERENCES[case]
    response = attribute(stub, top2_request("shapes-onnx", **{case: params}))
    network, images = networks["shapes/plain"], TWO
    if case in DOUBLE:
        network, images = copy.deepcopy(network).double(), TWO.double()
    assert_equal_to_reference(
        response, reference, network, network.net.get_submodule(CAM_LAYERS["shapes"]), images, passes=1
    )


def test_a_target_independent_map_is_computed_once_for_all_targets(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    response = attribute(stub, top2_request("resnet", eigen_cam=pb.EigenCamParams()))
    ours = maps(response)
    assert np.array_equal(ours[0], ours[1])
    assert response.stats.forward_passes == 2 and response.stats.backward_passes == 0


def test_supported_methods_list_what_each_backend_can_run(shared_server: RunningServer) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(shared_server.channel)
    listed = {
        name: set(models.GetModel(model_pb.GetModelRequest(model=name), timeout=30).model.supported_methods)
        for name in ("shapes", "shapes-onnx")
    }
    assert set(NEW_METHODS) <= listed["shapes"]
    assert set(NEW_METHODS) & listed["shapes-onnx"] == set(GRADIENT_FREE)


@pytest.mark.parametrize("method", ["ablation_cam", "full_grad", "hires_cam", "shapley_cam"])
def test_an_onnx_model_is_refused_listing_the_supported_methods(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, method: str
) -> None:
    params = getattr(pb, REFERENCE_MESSAGES[method])()
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, top2_request("shapes-onnx", **{method: params}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "eigen_cam" in error.value.details() and "score_cam" in error.value.details()


REFERENCE_MESSAGES = {
    "ablation_cam": "AblationCamParams",
    "full_grad": "FullGradParams",
    "hires_cam": "HiResCamParams",
    "shapley_cam": "ShapleyCamParams",
}


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("fem", pb.FemParams(k=-1.0), "fem.k"),
        ("fem", pb.FemParams(k=10.5), "fem.k"),
        ("fem", pb.FemParams(k=float("nan")), "fem.k"),
        ("kpca_cam", pb.KpcaCamParams(gamma=0.0), "kpca_cam.gamma"),
        ("kpca_cam", pb.KpcaCamParams(gamma=float("inf")), "kpca_cam.gamma"),
        ("hires_cam", pb.HiResCamParams(layer="classifier.2"), "hires_cam.layer"),
        ("eigen_cam", pb.EigenCamParams(layer="no.such.layer"), "eigen_cam.layer"),
        ("ablation_cam", pb.AblationCamParams(layer="classifier.2"), "ablation_cam.layer"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, method: str, params: object, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, top2_request("shapes", **{method: params}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)


def test_too_many_ablated_channels_are_refused(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = start_server(
        model_repository=write_models(tmp_path, ("shapes",)),
        cache={"enabled": False},
        attribution={"max_perturbations": 100},
    )
    stub = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, top2_request("shapes", ablation_cam=pb.AblationCamParams()))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        error.value.details().startswith("ablation_cam.layer")
        and "max_perturbations" in error.value.details()
    )
