"""The reference implementation of each attribution method for bench/attribution.py, set up with the same
model, input, target and parameters as the Glassbox request (Captum 0.9, pytorch-grad-cam 1.5, Zennit 1.0)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from captum.attr import (
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    FeatureAblation,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    LayerConductance,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Lime,
    NeuronGradient,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from captum.attr._core.lime import get_exp_kernel_similarity_function
from glassbox.methods.deep_lift_shap import shap_baselines
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    ShapleyCAM,
    XGradCAM,
)
from pytorch_grad_cam.fem import FEM
from pytorch_grad_cam.kpca_cam import KPCA_CAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.deep_lift_references import captum_deep_lift_network

SHAPLEY_PERMUTATIONS = 10
"""ShapleyValueSampling's permutations (bench/attribution.py asks Glassbox for as many)."""
PER_EVAL = 64
"""Captum's perturbations_per_eval and pytorch-grad-cam's ScoreCAM and AblationCAM batch size in the
comparison."""
CAM_FAMILY = {
    "hires_cam": HiResCAM,
    "grad_cam_element_wise": GradCAMElementWise,
    "xgrad_cam": XGradCAM,
    "layer_cam": LayerCAM,
    "eigen_cam": EigenCAM,
    "eigen_grad_cam": EigenGradCAM,
    "kpca_cam": KPCA_CAM,
    "fem": FEM,
    "full_grad": FullGrad,
}
"""pytorch-grad-cam's class of each CAM method compared with its defaults."""
NEURON_CHANNEL = 5
"""The channel of the CAM layer whose sum neuron_gradient differentiates."""
SMOOTHGRAD_BATCH = 10
"""Captum's nt_samples_batch_size: faster than all samples at once on a 2-core CPU (reference-timings.md)."""


def reference(
    method: str, module: torch.nn.Module, bench: Any, image: torch.Tensor, target: int, response: Any
) -> tuple[str, Callable[[], object] | None]:
    """(description, a callable computing the reference map) for `method`; None when there is none."""
    x = image[None].clone()
    layer = module.net.get_submodule(bench.cam_layer)
    window, stride = bench.occlusion
    attribution = response.images[0].attributions[0]
    if method == "saliency":
        return "Captum Saliency", lambda: Saliency(module).attribute(x, target=target, abs=False)
    if method == "gradient_x_input":
        return "Captum InputXGradient", lambda: InputXGradient(module).attribute(x, target=target)
    if method == "guided_backprop":
        return "Captum GuidedBackprop", lambda: GuidedBackprop(module).attribute(x, target=target)
    if method == "deconvnet":
        return "Captum Deconvolution", lambda: Deconvolution(module).attribute(x, target=target)
    if method == "grad_cam":
        return "pytorch-grad-cam GradCAM", _grad_cam(GradCAM, module, layer, x, target)
    if method == "grad_cam_plus_plus":
        return "pytorch-grad-cam GradCAMPlusPlus", _grad_cam(GradCAMPlusPlus, module, layer, x, target)
    if method == "guided_grad_cam":
        return "Captum GuidedGradCam", lambda: GuidedGradCam(module, layer).attribute(x, target=target)
    if method == "neuron_gradient":
        return "Captum NeuronGradient (channel sum)", lambda: NeuronGradient(module, layer).attribute(
            x, neuron_selector=lambda output: output[:, NEURON_CHANNEL].sum(dim=(1, 2))
        )
    if method == "score_cam":
        return f"pytorch-grad-cam ScoreCAM (batch {PER_EVAL})", _grad_cam(ScoreCAM, module, layer, x, target)
    if method == "ablation_cam":
        return f"pytorch-grad-cam AblationCAM (batch {PER_EVAL})", _grad_cam(
            AblationCAM, module, layer, x, target
        )
    if method in CAM_FAMILY:
        cls = CAM_FAMILY[method]
        return f"pytorch-grad-cam {cls.__name__}", _grad_cam(cls, module, layer, x, target)
    if method == "shapley_cam":  # its Hessian-vector product needs a graph through the parameters
        trainable = copy.deepcopy(module).requires_grad_(True)
        layer = trainable.net.get_submodule(bench.cam_layer)
        return "pytorch-grad-cam ShapleyCAM", _grad_cam(ShapleyCAM, trainable, layer, x, target)
    if method == "smoothgrad":
        tunnel = NoiseTunnel(Saliency(module))
        return f"Captum NoiseTunnel(Saliency), batch {SMOOTHGRAD_BATCH}", lambda: tunnel.attribute(
            x,
            target=target,
            nt_type="smoothgrad",
            nt_samples=bench.steps,
            stdevs=0.15,
            nt_samples_batch_size=SMOOTHGRAD_BATCH,
            abs=False,
        )
    if method == "integrated_gradients":
        return "Captum IntegratedGradients", lambda: IntegratedGradients(module).attribute(
            x, baselines=0.0, target=target, n_steps=bench.steps, method="gausslegendre"
        )
    if method == "lrp":
        return "Zennit EpsilonPlusFlat (context kept open)", _zennit(module, bench, x, target)
    if method == "deep_lift":
        rewritten = captum_deep_lift_network(copy.deepcopy(module))
        return "Captum DeepLift (rewritten net)", lambda: DeepLift(rewritten).attribute(
            x, x * 0, target=target
        )
    if method == "deep_lift_shap":
        backgrounds = shap_baselines(0, 8, tuple(x.shape[1:]))
        rewritten = captum_deep_lift_network(copy.deepcopy(module))
        return "Captum DeepLiftShap (8 baselines, rewritten net)", lambda: DeepLiftShap(rewritten).attribute(
            x, backgrounds, target=target
        )
    if method == "gradient_shap":
        backgrounds = shap_baselines(0, 8, tuple(x.shape[1:]))
        return "Captum GradientShap (8 baselines)", lambda: GradientShap(module).attribute(
            x, backgrounds, n_samples=bench.steps, stdevs=0.1, target=target
        )
    if method == "layer_integrated_gradients":
        return "Captum LayerIntegratedGradients", lambda: LayerIntegratedGradients(module, layer).attribute(
            x, x * 0, target=target, n_steps=bench.steps
        )
    if method == "layer_conductance":
        return "Captum LayerConductance", lambda: LayerConductance(module, layer).attribute(
            x, x * 0, target=target, n_steps=bench.steps
        )
    if method == "layer_gradient_x_activation":
        return "Captum LayerGradientXActivation", lambda: LayerGradientXActivation(module, layer).attribute(
            x, target=target
        )
    if method == "occlusion":
        return f"Captum Occlusion (per eval {PER_EVAL})", lambda: Occlusion(module).attribute(
            x,
            target=target,
            sliding_window_shapes=(3, window, window),
            strides=(3, stride, stride),
            baselines=0.5,
            perturbations_per_eval=PER_EVAL,
        )
    segments = torch.from_numpy(
        np.frombuffer(attribution.segments.data, dtype="<i8")
        .reshape(tuple(attribution.segments.shape))
        .copy()
    )[None, None]
    if method == "lime":
        lime = Lime(module, similarity_func=get_exp_kernel_similarity_function("cosine", 0.25))
        return f"Captum Lime (per eval {PER_EVAL})", lambda: lime.attribute(
            x,
            target=target,
            baselines=0.5,
            feature_mask=segments,
            n_samples=bench.samples,
            perturbations_per_eval=PER_EVAL,
        )
    if method == "kernel_shap":
        return f"Captum KernelShap (per eval {PER_EVAL})", lambda: KernelShap(module).attribute(
            x,
            target=target,
            baselines=0.5,
            feature_mask=segments,
            n_samples=bench.samples,
            perturbations_per_eval=PER_EVAL,
        )
    if method == "feature_ablation":
        return f"Captum FeatureAblation (per eval {PER_EVAL})", lambda: FeatureAblation(module).attribute(
            x, target=target, baselines=0.5, feature_mask=segments, perturbations_per_eval=PER_EVAL
        )
    if method == "shapley_value_sampling":
        return f"Captum ShapleyValueSampling (per eval {PER_EVAL})", lambda: ShapleyValueSampling(
            module
        ).attribute(
            x,
            target=target,
            baselines=0.5,
            feature_mask=segments,
            n_samples=SHAPLEY_PERMUTATIONS,
            perturbations_per_eval=PER_EVAL,
        )
    return "—", None


def _grad_cam(
    cls: type, module: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, target: int
) -> Callable[[], object]:
    """A pytorch-grad-cam call; the input requires grad so that the backward reaches the layer (the model's
    parameters do not: they are frozen, as in the server)."""

    def run() -> object:
        with cls(module, [layer]) as cam:
            cam.batch_size = PER_EVAL
            return cam(x.clone().requires_grad_(True), [ClassifierOutputTarget(target)])

    return run


def _zennit(module: torch.nn.Module, bench: Any, x: torch.Tensor, target: int) -> Callable[[], object]:
    """Zennit's EpsilonPlusFlat on a copy of the network (out-of-place ReLUs, as Zennit's hooks need), on
    the normalised input (Glassbox passes relevance through the normalisation); the composite is
    registered once, outside the timing, as a user explaining many images would keep it."""
    net = copy.deepcopy(module.net)
    for layer in net.modules():
        if isinstance(layer, torch.nn.ReLU):
            layer.inplace = False
    canonizers = [ResNetCanonizer()] if bench.name == "resnet18" else [SequentialMergeBatchNorm()]
    attributor = Gradient(model=net, composite=EpsilonPlusFlat(canonizers=canonizers))
    attributor.__enter__()
    z = (x - module.mean) / module.std
    with torch.no_grad():
        one_hot = torch.zeros_like(net(z))
    one_hot[:, target] = 1.0
    return lambda: attributor(z.clone().requires_grad_(True), one_hot)
