"""Neural style transfer (Gatys, Ecker & Bethge 2016, "Image style transfer using convolutional neural
networks"): an image whose features at a content layer match the content image's and whose Gram
matrices at style layers match the style image's, on any model of the repository.

Both losses are relative — ‖F(x) − F(c)‖² / ‖F(c)‖² for content and Σ_l w_l ‖G_l(x) − G_l(s)‖² /
‖G_l(s)‖² for style, with G = F Fᵀ / (C·H·W) — so the weights mean the same on any model and layer.
Adam on logit-space pixels replaces the paper's L-BFGS, which needs many evaluations per step and
cannot report progress or stop after one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import InvalidArgument
from glassbox.generative import parametrisations
from glassbox.generative.capture import LayerCapture
from glassbox.generative.optimise import Progress, adam, evaluate, optimise
from glassbox.generative.parametrisations import PIXEL_RGB
from glassbox.generative.validation import check_learning_rate, check_range, check_steps


@dataclass(frozen=True)
class StyleTransfer:
    """A checked style-transfer request; images are [3, H, W] in [0, 1] at the model's input size."""

    model: TorchModel
    content: torch.Tensor
    style: torch.Tensor
    content_layer: str
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...] = ()
    content_weight: float = 1.0
    style_weight: float = 100.0
    init_from_content: bool = True
    steps: int = 200
    learning_rate: float = 0.05
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        self.model.layer_info(self.content_layer, field="content_layer")
        if not self.style_layers:
            raise InvalidArgument("at least one style layer is required", field="style_layers")
        check_range(len(self.style_layers), 1, self.limits.max_style_layers, "style_layers")
        for i, layer in enumerate(self.style_layers):
            if len(self.model.layer_info(layer, field=f"style_layers[{i}]").output_shape) != 3:
                raise InvalidArgument("a style layer needs a [C, H, W] output", field=f"style_layers[{i}]")
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise InvalidArgument(
                f"{len(self.style_layer_weights)} weights for {len(self.style_layers)} style layers; "
                "give one per layer or none",
                field="style_layer_weights",
            )
        for i, weight in enumerate(self.style_layer_weights):
            check_range(weight, 0.0, 1e6, f"style_layer_weights[{i}]")
        check_range(self.content_weight, 0.0, 1e6, "content_weight")
        check_range(self.style_weight, 0.0, 1e6, "style_weight")
        check_steps(self.steps, self.limits)
        check_learning_rate(self.learning_rate, self.limits)

    @property
    def layer_weights(self) -> tuple[float, ...]:
        return self.style_layer_weights or (1.0,) * len(self.style_layers)


@dataclass(frozen=True)
class Stylised:
    """The stylised image [3, H, W] in [0, 1] and the (unweighted) losses before and after."""

    image: torch.Tensor
    initial_style_loss: float
    final_style_loss: float
    initial_content_loss: float
    final_content_loss: float


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices [B, C, C] of features [B, C, H, W], divided by C·H·W."""
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[1:].numel()


def _relative(difference: torch.Tensor, target_norm_sq: torch.Tensor) -> torch.Tensor:
    return difference.flatten(1).square().sum(1) / target_norm_sq


def transfer(spec: StyleTransfer, *, generator: torch.Generator, progress: Progress) -> Stylised:
    model, device = spec.model, spec.model.device
    content = spec.content[None].to(device)
    layers = {spec.content_layer, *spec.style_layers}
    with LayerCapture(model, layers, need_logits=False) as capture:
        with torch.no_grad():
            content_target = capture.forward(content).layers[spec.content_layer].detach()
            style_layers = capture.forward(spec.style[None].to(device)).layers
            style_targets = [gram(style_layers[layer]).detach() for layer in spec.style_layers]
        content_norm = content_target.flatten(1).square().sum(1).clamp_min(1e-12)
        style_norms = [target.flatten(1).square().sum(1).clamp_min(1e-12) for target in style_targets]

        def losses(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = capture.forward(images).layers
            content_loss = _relative(features[spec.content_layer] - content_target, content_norm)
            style_loss = sum(
                (
                    weight * _relative(gram(features[layer]) - target, norm)
                    for weight, layer, target, norm in zip(
                        spec.layer_weights, spec.style_layers, style_targets, style_norms, strict=True
                    )
                ),
                torch.zeros_like(content_loss),
            )
            return content_loss, style_loss

        def score(images: torch.Tensor) -> torch.Tensor:
            content_loss, style_loss = losses(images)
            return -(spec.content_weight * content_loss + spec.style_weight * style_loss)

        def both(images: torch.Tensor) -> torch.Tensor:
            return torch.stack(losses(images), dim=1)

        if spec.init_from_content:
            image = parametrisations.from_image(PIXEL_RGB, content, device=device)
        else:
            height, width = content.shape[-2:]
            image = parametrisations.build(PIXEL_RGB, 1, height, width, generator=generator, device=device)
        with torch.no_grad():
            initial = evaluate(both, image())[0]
        optimise(
            image,
            score,
            optimiser=adam(image.parameters(), spec.learning_rate),
            steps=spec.steps,
            progress=progress,
        )
        with torch.no_grad():
            result = image()
        final = evaluate(both, result)[0]
    return Stylised(
        image=result[0].cpu(),
        initial_style_loss=float(initial[1]),
        final_style_loss=float(final[1]),
        initial_content_loss=float(initial[0]),
        final_content_loss=float(final[0]),
    )
