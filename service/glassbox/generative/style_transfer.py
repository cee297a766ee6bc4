"""Neural style transfer (Gatys, Ecker & Bethge 2016, "Image style transfer using convolutional neural
networks"): an image whose features at a content layer match the content image's and whose Gram
matrices at style layers match the style image's, on any model of the repository.

Both losses are relative — ‖F(x) − F(c)‖² / ‖F(c)‖² for content and Σ_l w_l ‖G_l(x) − G_l(s)‖² /
‖G_l(s)‖² for style, with G = F Fᵀ / (C·H·W) — so the weights mean the same on any model and layer.
Adam on logit-space pixels replaces the paper's L-BFGS, which needs many evaluations per step and
cannot report progress or stop after one step.

`stylise` runs a batch of (content, style) pairs in one optimisation: every loss is per image and Adam
acts element-wise, so each image of the batch follows the path it would follow alone. It also takes
per-image content masks (the content loss then counts only where the mask is, at the content layer's
resolution; Gatys et al. 2017, "Controlling perceptual factors in neural style transfer", restrict
losses to regions the same way): the cue-conflict images of `shape_bias` use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.common.validation import check_learning_rate, check_range, check_steps
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import InvalidArgument
from glassbox.generative import parametrisations
from glassbox.generative.optimise import StepSpan, adam, evaluate, optimise
from glassbox.generative.parametrisations import PIXEL_RGB


@dataclass(frozen=True, kw_only=True)
class StyleSettings:
    """The checked style-transfer objective and optimiser: the layers and weights of both losses."""

    model: TorchModel
    content_layer: str
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...] = ()
    content_weight: float = 1.0
    style_weight: float = 100.0
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

    def require_spatial_content_layer(self) -> None:
        """InvalidArgument naming `content_layer` unless its output is [C, H, W] (content masks need it)."""
        if len(self.model.layer_info(self.content_layer, field="content_layer").output_shape) != 3:
            raise InvalidArgument(
                "a content mask needs a content layer with a [C, H, W] output", field="content_layer"
            )


@dataclass(frozen=True, kw_only=True)
class StyleTransfer(StyleSettings):
    """A checked style-transfer request; images are [3, H, W] in [0, 1] at the model's input size."""

    content: torch.Tensor
    style: torch.Tensor
    init_from_content: bool = True


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


def transfer(spec: StyleTransfer, *, generator: torch.Generator, progress: StepSpan) -> Stylised:
    """One image: the content image's content in the style image's style."""
    return stylise(
        spec,
        spec.content[None],
        spec.style[None],
        init_from_content=spec.init_from_content,
        generator=generator,
        progress=progress,
    )[0]


def stylise(
    settings: StyleSettings,
    contents: torch.Tensor,
    styles: torch.Tensor,
    *,
    init_from_content: bool,
    content_masks: torch.Tensor | None = None,
    generator: torch.Generator,
    progress: StepSpan,
) -> list[Stylised]:
    """Stylise each content image [B, 3, H, W] with the style image of the same row, in one optimisation.

    Args:
        settings: the layers, weights and optimiser settings.
        contents: content images, [B, 3, H, W] in [0, 1].
        styles: style images, [B, 3, H, W] in [0, 1] (the same size).
        init_from_content: start from the content images, or else from noise drawn from `generator`.
        content_masks: optional weights [B, H, W] in [0, 1] of where the content loss counts (area-averaged
            to the content layer's resolution; `settings.require_spatial_content_layer()` must hold).
        generator: the CPU generator of the initial noise.
        progress: where each step is reported (and where a cancelled job stops).
    """
    model, device = settings.model, settings.model.device
    contents, styles = contents.to(device), styles.to(device)
    layers = {settings.content_layer, *settings.style_layers}
    with LayerCapture(model, layers, need_logits=False) as capture:
        with torch.no_grad():
            content_target = capture.forward(contents).layers[settings.content_layer].detach()
            style_layers = capture.forward(styles).layers
            style_targets = [gram(style_layers[layer]).detach() for layer in settings.style_layers]
        weights = (
            torch.ones(1, device=device)
            if content_masks is None
            else F.adaptive_avg_pool2d(
                content_masks.to(device, torch.float32)[:, None],
                (content_target.shape[-2], content_target.shape[-1]),
            )
        )
        content_norm = (weights * content_target).flatten(1).square().sum(1).clamp_min(1e-12)
        style_norms = [target.flatten(1).square().sum(1).clamp_min(1e-12) for target in style_targets]

        def losses(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = capture.forward(images).layers
            content_loss = _relative(
                weights * (features[settings.content_layer] - content_target), content_norm
            )
            style_loss = sum(
                (
                    weight * _relative(gram(features[layer]) - target, norm)
                    for weight, layer, target, norm in zip(
                        settings.layer_weights, settings.style_layers, style_targets, style_norms, strict=True
                    )
                ),
                torch.zeros_like(content_loss),
            )
            return content_loss, style_loss

        def score(images: torch.Tensor) -> torch.Tensor:
            content_loss, style_loss = losses(images)
            return -(settings.content_weight * content_loss + settings.style_weight * style_loss)

        def both(images: torch.Tensor) -> torch.Tensor:
            return torch.stack(losses(images), dim=1)

        if init_from_content:
            image = parametrisations.from_image(PIXEL_RGB, contents, device=device)
        else:
            batch, _, height, width = contents.shape
            image = parametrisations.build(
                PIXEL_RGB, batch, height, width, generator=generator, device=device
            )
        with torch.no_grad():
            initial = evaluate(both, image())
        optimise(
            image,
            score,
            optimiser=adam(image.parameters(), settings.learning_rate),
            steps=settings.steps,
            progress=progress,
        )
        with torch.no_grad():
            result = image()
        final = evaluate(both, result)
    return [
        Stylised(
            image=result[i].cpu(),
            initial_style_loss=float(initial[i, 1]),
            final_style_loss=float(final[i, 1]),
            initial_content_loss=float(initial[i, 0]),
            final_content_loss=float(final[i, 0]),
        )
        for i in range(result.shape[0])
    ]
