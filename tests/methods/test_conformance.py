"""Every registered method × backend × model × batch size over gRPC, with two targets.

Models: the shipped demo CNN (torch) and its ONNX export, a torchvision resnet18 and a tiny vision
transformer with random weights (safetensors written at test time, 64×64). A method either returns a
finite map of the right shape per (image, target) with the target's score (and not constant on the
trained demo model), or — where the
model cannot run it (a gradient method on ONNX, a ReLU rule on the ReLU-free ViT, a layer method on a
model that lists no layers) — FAILED_PRECONDITION naming the methods that model supports, exactly as
GetModel lists them. A new method is one row in PARAMS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from glassbox.methods.registry import method_names
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, model_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from support.gradient_harness import IMAGES, image_message, tensor
from support.model_repository import copy_shipped_model, write_model_version
from support.servers import RunningServer

PARAMS: dict[str, object] = {
    "saliency": pb.SaliencyParams(),
    "gradient_x_input": pb.GradientXInputParams(),
    "smoothgrad": pb.SmoothGradParams(samples=3, noise_fraction=0.1),
    "integrated_gradients": pb.IntegratedGradientsParams(steps=4),
    "guided_backprop": pb.GuidedBackpropParams(),
    "deconvnet": pb.DeconvnetParams(),
    "grad_cam": pb.GradCamParams(),
    "guided_grad_cam": pb.GuidedGradCamParams(),
    "grad_cam_plus_plus": pb.GradCamPlusPlusParams(),
    "score_cam": pb.ScoreCamParams(),
    "occlusion": pb.OcclusionParams(window=16, stride=16),
    "lime": pb.LimeParams(samples=64),
    "kernel_shap": pb.KernelShapParams(samples=16),
    "neuron_gradient": pb.NeuronGradientParams(scope=pb.NEURON_SCOPE_LAYER),
    "lrp": pb.LrpParams(),
    "hires_cam": pb.HiResCamParams(),
    "grad_cam_element_wise": pb.GradCamElementWiseParams(),
    "xgrad_cam": pb.XGradCamParams(),
    "layer_cam": pb.LayerCamParams(),
    "eigen_cam": pb.EigenCamParams(),
    "eigen_grad_cam": pb.EigenGradCamParams(),
    "ablation_cam": pb.AblationCamParams(),
    "full_grad": pb.FullGradParams(),
    "kpca_cam": pb.KpcaCamParams(),
    "fem": pb.FemParams(k=1.0),
    "shapley_cam": pb.ShapleyCamParams(),
    "xrai": pb.XraiParams(steps=4),
    "guided_integrated_gradients": pb.GuidedIntegratedGradientsParams(steps=4),
    "blur_integrated_gradients": pb.BlurIntegratedGradientsParams(steps=4),
    "rise": pb.RiseParams(masks=32, grid_size=4),
    "sobol": pb.SobolParams(grid_size=2, designs=4),
    "hsic": pb.HsicParams(grid_size=4, designs=16),
    "deep_lift": pb.DeepLiftParams(),
    "deep_lift_shap": pb.DeepLiftShapParams(baselines=2),
    "gradient_shap": pb.GradientShapParams(samples=3, stdev=0.05),
    "feature_ablation": pb.FeatureAblationParams(superpixels=8, grid=True),
    "shapley_value_sampling": pb.ShapleyValueSamplingParams(samples=2, superpixels=6, grid=True),
    "layer_integrated_gradients": pb.LayerIntegratedGradientsParams(steps=3),
    "layer_conductance": pb.LayerConductanceParams(steps=3),
    "layer_gradient_x_activation": pb.LayerGradientXActivationParams(),
}
NEURON_LAYERS = {"shapes": "features.10", "resnet": "layer2", "vit": "encoder.layers.encoder_layer_0"}
MODELS_UNDER_TEST = ["shapes", "shapes-onnx", "resnet", "vit"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conformance-models")
    for name in ("shapes", "shapes-onnx"):
        copy_shipped_model(root, name)
    write_model_version(root, "resnet", "1", architecture="resnet18", seed=2, extra_toml=_explain("layer4"))
    vit_layer = "encoder.layers.encoder_layer_1.ln_1"
    write_model_version(
        root, "vit", "1", architecture="glassbox.tiny_vit", seed=2, extra_toml=_explain(vit_layer)
    )
    return root


def _explain(layer: str) -> str:
    return f'[explain]\ndefault_cam_layer = "{layer}"\n'


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer], repository: Path) -> RunningServer:
    return start_server(model_repository=repository, cache={"enabled": False})


@pytest.fixture(scope="module")
def supported(server: RunningServer) -> dict[str, list[str]]:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    return {
        name: list(stub.GetModel(model_pb.GetModelRequest(model=name), timeout=30).model.supported_methods)
        for name in MODELS_UNDER_TEST
    }


def test_every_registered_method_has_a_row() -> None:
    assert sorted(PARAMS) == method_names()


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("model", MODELS_UNDER_TEST)
@pytest.mark.parametrize("method", sorted(PARAMS))
def test_method_conforms(
    server: RunningServer, supported: dict[str, list[str]], method: str, model: str, batch: int
) -> None:
    stub = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
    params = PARAMS[method]
    if method == "neuron_gradient":
        params = pb.NeuronGradientParams(layer=NEURON_LAYERS.get(model, ""), scope=pb.NEURON_SCOPE_LAYER)
    message = pb.AttributeRequest(
        model=model,
        images=[image_message(image) for image in IMAGES[:batch]],
        output=pb.OutputOptions(map=True, heatmap_png=True),
        **{method: params},
    )
    explains_classes = method != "neuron_gradient"
    if explains_classes:
        message.targets.labels.extend(["star", "circle"])
    if method not in supported[model]:
        with pytest.raises(grpc.RpcError) as error:
            stub.Attribute(message, timeout=120)
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert str(supported[model]) in error.value.details()
        return
    response = stub.Attribute(message, timeout=120)
    assert len(response.images) == batch
    spreads = []
    for image in response.images:
        assert len(image.attributions) == (2 if explains_classes else 1)
        for attribution, label in zip(image.attributions, ["star", "circle"], strict=False):
            values = tensor(attribution.map)
            assert values.shape == (64, 64) and np.isfinite(values).all()
            spreads.append(values.std())
            assert attribution.heatmap_png.startswith(b"\x89PNG")
            if explains_classes:
                assert attribution.target.label == label and 0 < attribution.target.probability <= 1
    if model.startswith("shapes"):  # a random network may legitimately give all-zero maps (ReLU'd CAMs, LIME)
        assert min(spreads) > 0
    assert response.stats.forward_passes >= batch and response.stats.compute_seconds > 0
