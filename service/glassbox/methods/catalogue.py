"""Every attribution method the server offers, one row each: the list the registry serves.

A new method is one module (a subclass of `AttributionMethod` with its `name`, the AttributeRequest
oneof field) and one row here, as a new job kind is one module and one row in `wire.kinds.job_kinds()`.
"""

from __future__ import annotations

from glassbox.methods.ablation_cam import AblationCam
from glassbox.methods.base import AttributionMethod
from glassbox.methods.blur_integrated_gradients import BlurIntegratedGradients
from glassbox.methods.deep_lift import DeepLift
from glassbox.methods.deep_lift_shap import DeepLiftShap
from glassbox.methods.eigen_cam import EigenCam
from glassbox.methods.eigen_grad_cam import EigenGradCam
from glassbox.methods.feature_ablation import FeatureAblation
from glassbox.methods.fem import Fem
from glassbox.methods.full_grad import FullGrad
from glassbox.methods.grad_cam import GradCam
from glassbox.methods.grad_cam_element_wise import GradCamElementWise
from glassbox.methods.grad_cam_plus_plus import GradCamPlusPlus
from glassbox.methods.gradient_shap import GradientShap
from glassbox.methods.gradient_x_input import GradientXInput
from glassbox.methods.guided_backprop import Deconvnet, GuidedBackprop
from glassbox.methods.guided_grad_cam import GuidedGradCam
from glassbox.methods.guided_integrated_gradients import GuidedIntegratedGradients
from glassbox.methods.hires_cam import HiResCam
from glassbox.methods.hsic import Hsic
from glassbox.methods.integrated_gradients import IntegratedGradients
from glassbox.methods.kernel_shap import KernelShap
from glassbox.methods.kpca_cam import KpcaCam
from glassbox.methods.layer_cam import LayerCam
from glassbox.methods.layer_conductance import LayerConductance
from glassbox.methods.layer_gradient_x_activation import LayerGradientXActivation
from glassbox.methods.layer_integrated_gradients import LayerIntegratedGradients
from glassbox.methods.lime import Lime
from glassbox.methods.lrp import Lrp
from glassbox.methods.neuron_gradient import NeuronGradient
from glassbox.methods.occlusion import Occlusion
from glassbox.methods.rise import Rise
from glassbox.methods.saliency import Saliency
from glassbox.methods.score_cam import ScoreCam
from glassbox.methods.shapley_cam import ShapleyCam
from glassbox.methods.shapley_value_sampling import ShapleyValueSampling
from glassbox.methods.smoothgrad import SmoothGrad
from glassbox.methods.sobol import Sobol
from glassbox.methods.xgrad_cam import XGradCam
from glassbox.methods.xrai import Xrai

ATTRIBUTION_METHODS: tuple[type[AttributionMethod], ...] = (
    AblationCam,
    BlurIntegratedGradients,
    Deconvnet,
    DeepLift,
    DeepLiftShap,
    EigenCam,
    EigenGradCam,
    FeatureAblation,
    Fem,
    FullGrad,
    GradCam,
    GradCamElementWise,
    GradCamPlusPlus,
    GradientShap,
    GradientXInput,
    GuidedBackprop,
    GuidedGradCam,
    GuidedIntegratedGradients,
    HiResCam,
    Hsic,
    IntegratedGradients,
    KernelShap,
    KpcaCam,
    LayerCam,
    LayerConductance,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    Lime,
    Lrp,
    NeuronGradient,
    Occlusion,
    Rise,
    Saliency,
    ScoreCam,
    ShapleyCam,
    ShapleyValueSampling,
    SmoothGrad,
    Sobol,
    XGradCam,
    Xrai,
)
