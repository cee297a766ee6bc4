"""Texture or shape? The shape bias of a classifier on cue-conflict images (Geirhos et al. 2019,
"ImageNet-trained CNNs are biased towards texture; increasing shape bias improves accuracy and robustness").

A cue-conflict image has the shape of one class and the texture of another. Here it is made with the
style-transfer machinery (`style_transfer.stylise`): the content of an image of class A (the shape cue),
the Gram statistics of an image of class B (the texture and colour cue). The model classifies it, and
each decision counts as following the shape (A), the texture (B) or neither. The shape bias is

    shape decisions / (shape decisions + texture decisions),

per ordered class pair (A, B) and overall: 1 = decides by shape only, 0 = by texture only. Decisions that
follow neither cue do not count (as in the paper); their number is reported beside it.

Two constructions:

- `IMAGE` (the paper's): start from the content image, content loss over the whole image. Everything
  placed in the content image, the object and also any local mark (a watermark, a corner patch), is
  content and survives, so a model that decides by such a mark reads as shape-biased.
- `OBJECT`: only the object's silhouette comes from A. The content image is a composite: A's object
  (its mask) over B's scene, with B's own object removed (its region filled from the surrounding
  background, `fill_holes`); the content loss counts on A's object and on B's background, not in the
  filled hole, so the style statistics texture it. Everything outside A's object, marks included, is
  B's: a Geirhos texture transfer on top of a background swap (Xiao et al. 2021, "Noise or signal: the
  role of image backgrounds in object recognition"). It needs an object mask for every image.

The images are made with the model's own features, so the style layers decide what "texture" means:
Gram matrices of the layers the classifier reads last carry the class itself (optimising them is close to
a targeted attack), so use early layers for the texture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import torch
import torch.nn.functional as F

from glassbox.common.validation import check_range
from glassbox.config import GenerativeJobLimits
from glassbox.core.call import CallContext
from glassbox.core.errors import InvalidArgument
from glassbox.generative.optimise import StepReporter, StepSpan
from glassbox.generative.style_transfer import StyleSettings, stylise
from glassbox.methods.batching import batch_ranges, inference_bytes_per_row
from glassbox.models.datasets import LabelledImages

DEFAULT_STEPS = 100
"""Style-transfer steps per cue-conflict image when the spec gives none (half the style_transfer kind's
200: the images need the other class's statistics, not a finished picture)."""

MAX_EXAMPLES = 16
"""Most cue-conflict images a result returns with their pixels (the grid shows one of every pair)."""


class Construction(StrEnum):
    IMAGE = "image"
    OBJECT = "object"


class Decision(StrEnum):
    SHAPE = "shape"
    TEXTURE = "texture"
    OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class ShapeBias:
    """A checked shape-bias request over a labelled set.

    Args:
        style: the style-transfer layers, weights, steps and learning rate (and the model).
        data: the set; labels required, object masks too for `Construction.OBJECT`.
        set_name: the set's name for the report ("inline" for images sent with the request).
        classes: the classes paired, at least two, each with an image in the set.
        images_per_pair: cue-conflict images per ordered pair (shape class, texture class).
        construction: how the images are made (module docstring).
        examples: cue-conflict images returned with their pixels: the first of each of the first pairs.
    """

    style: StyleSettings
    data: LabelledImages
    set_name: str
    classes: tuple[int, ...]
    images_per_pair: int = 2
    construction: Construction = Construction.OBJECT
    examples: int = 6
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)

    def __post_init__(self) -> None:
        labels = self.data.require_labels("images")
        if self.construction is Construction.OBJECT:
            self.data.require_masks("images")
            self.style.require_spatial_content_layer()
        if len(self.classes) < 2:
            raise InvalidArgument("pair at least two classes", field="classes")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidArgument("a class is listed twice", field="classes")
        for i, index in enumerate(self.classes):
            if not bool((labels == index).any()):
                raise InvalidArgument(
                    f"the set has no image of class {self.style.model.labels[index]!r}", field=f"classes[{i}]"
                )
        check_range(self.images_per_pair, 1, self.limits.max_cue_conflict_images, "images_per_pair")
        total = len(self.pairs) * self.images_per_pair
        if total > self.limits.max_cue_conflict_images:
            raise InvalidArgument(
                f"{len(self.pairs)} class pairs × {self.images_per_pair} images = {total} cue-conflict "
                f"images, over the limit of {self.limits.max_cue_conflict_images} "
                "(jobs.limits.generative.max_cue_conflict_images): pair fewer classes or make fewer per pair",
                field="images_per_pair",
            )
        check_range(self.examples, 0, MAX_EXAMPLES, "examples")

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Ordered (shape class, texture class) pairs of different classes, in `classes` order."""
        return [(a, b) for a in self.classes for b in self.classes if a != b]


@dataclass(frozen=True)
class CueConflict:
    """One cue-conflict image: which set images gave its shape and texture, and the model's decision."""

    shape_class: int
    texture_class: int
    content_index: int
    style_index: int
    predicted: int
    shape_probability: float
    texture_probability: float

    @property
    def decision(self) -> Decision:
        if self.predicted == self.shape_class:
            return Decision.SHAPE
        if self.predicted == self.texture_class:
            return Decision.TEXTURE
        return Decision.OTHER


@dataclass(frozen=True)
class Tally:
    """Decisions counted over some cue-conflict images."""

    shape: int = 0
    texture: int = 0
    other: int = 0

    @property
    def images(self) -> int:
        return self.shape + self.texture + self.other

    @property
    def shape_bias(self) -> float:
        """shape / (shape + texture); NaN when no decision followed either cue."""
        cued = self.shape + self.texture
        return self.shape / cued if cued else float("nan")

    @classmethod
    def of(cls, images: list[CueConflict]) -> Tally:
        decisions = [image.decision for image in images]
        return cls(
            shape=decisions.count(Decision.SHAPE),
            texture=decisions.count(Decision.TEXTURE),
            other=decisions.count(Decision.OTHER),
        )


@dataclass(frozen=True)
class PairResult:
    shape_class: int
    texture_class: int
    tally: Tally


@dataclass(frozen=True)
class ShapeBiasReport:
    """What a shape-bias job found: `images` in pair order, `pictures` those images [N, 3, H, W]."""

    construction: Construction
    set_name: str
    images: list[CueConflict]
    pictures: torch.Tensor
    content_accuracy: float
    style_accuracy: float
    wall_seconds: float

    @property
    def overall(self) -> Tally:
        return Tally.of(self.images)

    @property
    def pairs(self) -> list[PairResult]:
        grouped: dict[tuple[int, int], list[CueConflict]] = {}
        for image in self.images:
            grouped.setdefault((image.shape_class, image.texture_class), []).append(image)
        return [PairResult(a, b, Tally.of(members)) for (a, b), members in grouped.items()]

    def example_indices(self, count: int) -> list[int]:
        """The first cue-conflict image of each of the first `count` pairs."""
        seen: dict[tuple[int, int], int] = {}
        for i, image in enumerate(self.images):
            seen.setdefault((image.shape_class, image.texture_class), i)
        return list(seen.values())[:count]


def draw_pairs(job: ShapeBias, generator: torch.Generator) -> list[tuple[int, int, int, int]]:
    """(shape class, texture class, content index, style index) for every cue-conflict image, pair by pair:
    content and style images drawn uniformly (with replacement) from the set's images of each class."""
    labels = job.data.require_labels("images")
    members = {index: (labels == index).nonzero().flatten() for index in job.classes}
    draws = []
    for a, b in job.pairs:
        contents = members[a][torch.randint(len(members[a]), (job.images_per_pair,), generator=generator)]
        styles = members[b][torch.randint(len(members[b]), (job.images_per_pair,), generator=generator)]
        draws += [(a, b, int(c), int(s)) for c, s in zip(contents, styles, strict=True)]
    return draws


def measure(
    job: ShapeBias, call: CallContext, *, generator: torch.Generator, reporter: StepReporter
) -> ShapeBiasReport:
    """Build every cue-conflict image (`limits.max_batch` per optimisation), classify each through the
    serving core, and count the decisions.

    Args:
        job: the checked request.
        call: the call context whose forward passes are serving units.
        generator: the CPU generator of the image draws (seeded with the job's seed).
        reporter: where each optimisation step goes (a `StepReporter`: the job's context).
    """
    started = time.perf_counter()
    draws = draw_pairs(job, generator)
    data = job.data
    chunks = list(batch_ranges(len(draws), job.limits.max_batch))
    rows = call.rows_per_batch(inference_bytes_per_row(job.style.model))
    images: list[CueConflict] = []
    pictures = []
    for number, (first, stop) in enumerate(chunks):
        chunk = draws[first:stop]
        contents = torch.stack([data.images[c] for _, _, c, _ in chunk])
        styles = torch.stack([data.images[s] for _, _, _, s in chunk])
        content_masks = None
        if job.construction is Construction.OBJECT:
            masks = data.require_masks("images")
            contents, content_masks = composites(
                contents,
                torch.stack([masks[c] for _, _, c, _ in chunk]),
                styles,
                torch.stack([masks[s] for _, _, _, s in chunk]),
            )
        stylised = stylise(
            job.style,
            contents,
            styles,
            init_from_content=True,
            content_masks=content_masks,
            generator=generator,
            progress=StepSpan(
                reporter,
                total=len(chunks) * job.style.steps,
                offset=number * job.style.steps,
                message=f"cue-conflict images {first + 1}-{stop} of {len(draws)}",
            ),
        )
        made = torch.stack([result.image for result in stylised])
        probabilities = _classify(call, made, rows).softmax(dim=1)
        for (a, b, c, s), row in zip(chunk, probabilities, strict=True):
            images.append(CueConflict(a, b, c, s, int(row.argmax()), float(row[a]), float(row[b])))
        pictures.append(made)
    contents_used = sorted({c for _, _, c, _ in draws})
    styles_used = sorted({s for _, _, _, s in draws})
    return ShapeBiasReport(
        construction=job.construction,
        set_name=job.set_name,
        images=images,
        pictures=torch.cat(pictures),
        content_accuracy=_accuracy(call, data, contents_used, rows),
        style_accuracy=_accuracy(call, data, styles_used, rows),
        wall_seconds=time.perf_counter() - started,
    )


def composites(
    shapes: torch.Tensor, shape_masks: torch.Tensor, scenes: torch.Tensor, scene_masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The OBJECT construction's content images and content masks.

    Args:
        shapes: images [B, 3, H, W] whose objects give the shape.
        shape_masks: their object masks [B, H, W] (bool).
        scenes: images [B, 3, H, W] whose scene (everything but their object) surrounds it.
        scene_masks: the scenes' object masks [B, H, W] (bool), removed and filled.

    Returns:
        The composites [B, 3, H, W] and where their pixels are real [B, H, W] (float 0/1): the shape's
        object and the scene's background, not the filled remainder of the scene's object.
    """
    on_shape = shape_masks[:, None].float()
    background = (~scene_masks)[:, None].float()
    filled = fill_holes(scenes, background)
    composite = on_shape * shapes + (1 - on_shape) * filled
    real = torch.maximum(on_shape, background)[:, 0]
    return composite, real


def fill_holes(images: torch.Tensor, known: torch.Tensor, smoothing: int = 4) -> torch.Tensor:
    """Images [B, 3, H, W] with the pixels where `known` [B, 1, H, W] is 0 filled from the known ones around
    them: push-pull interpolation (each level's holes from the next coarser level's known averages, then
    `smoothing` 3×3 box-blur passes that keep the known pixels fixed). An image with no known pixel
    becomes black."""
    if min(images.shape[-2:]) <= 2 or bool((known > 0).all()):
        coarse = images
    else:
        weight = F.avg_pool2d(known, 2, ceil_mode=True)
        averaged = F.avg_pool2d(images * known, 2, ceil_mode=True) / weight.clamp_min(1e-6)
        coarse = F.interpolate(
            fill_holes(averaged, (weight > 0).float(), smoothing), size=images.shape[-2:], mode="bilinear"
        )
    out = known * images + (1 - known) * coarse
    for _ in range(smoothing):
        blurred = F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        out = known * images + (1 - known) * blurred
    return out


def _classify(call: CallContext, images: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.cat([call.forward(images[a:b]) for a, b in batch_ranges(len(images), rows)])


def _accuracy(call: CallContext, data: LabelledImages, indices: list[int], rows: int) -> float:
    """How many of the set's images at `indices` the model classifies as their label."""
    labels = data.require_labels("images")[indices]
    predicted = _classify(call, data.images[indices], rows).argmax(dim=1)
    return float((predicted == labels).float().mean())
