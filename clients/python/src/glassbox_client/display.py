"""Notebook display: results show as pictures in Jupyter (`_repr_png_` / `_repr_html_`), and `plot`
draws several methods side by side with matplotlib, as Captum's `visualize_image_attr_multiple` does.

The rich reprs need only PIL (a dependency already); `plot` needs matplotlib, the optional extra
`pip install 'glassbox-client[plot]'`, so the client stays light.

    from glassbox_client import GlassboxClient, plot
    with GlassboxClient("127.0.0.1:50051") as glassbox:
        results = {  # aggregation="none": per-channel maps, which plot shows as |max| over the channels
            method: glassbox.attribute(
                "docs/images/star.png", model="shapes", method=method, outputs=["map"], aggregation="none"
            )
            for method in ("saliency", "integrated_gradients", "grad_cam")
        }
    figure = plot(results, image="docs/images/star.png")
    figure.savefig("methods.png")
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image as PILImage

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from glassbox_client.images import ImageInput
    from glassbox_client.types import Attribution, AttributionResult

CLIP_PERCENTILE = 99.0
"""The percentile of |value| at the end of `plot`'s colour scale, as the server's pictures use."""


def png_bytes(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def html_pictures(pictures: Sequence[tuple[str, PILImage.Image]], title: str = "") -> str:
    """A row of captioned pictures as HTML (inline PNGs, pixelated when enlarged)."""
    cells = []
    for caption, picture in pictures:
        data = base64.b64encode(png_bytes(picture)).decode()
        width = max(picture.width, min(256, picture.width * 4))
        cells.append(
            '<figure style="display:inline-block;margin:0 8px 8px 0;vertical-align:top">'
            f'<img src="data:image/png;base64,{data}" width="{width}" alt="{html.escape(caption)}" '
            'style="image-rendering:pixelated">'
            f'<figcaption style="font-size:12px">{html.escape(caption)}</figcaption></figure>'
        )
    heading = f"<div><strong>{html.escape(title)}</strong></div>" if title else ""
    return f"<div>{heading}{''.join(cells)}</div>"


def picture_strip(pictures: Sequence[PILImage.Image], gap: int = 4) -> PILImage.Image | None:
    """Pictures side by side on white, top-aligned (None when there are none)."""
    if not pictures:
        return None
    width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
    strip = PILImage.new("RGB", (width, max(p.height for p in pictures)), "white")
    x = 0
    for picture in pictures:
        strip.paste(picture.convert("RGB"), (x, 0))
        x += picture.width + gap
    return strip


def attribution_pictures(attribution: Attribution) -> list[tuple[str, PILImage.Image]]:
    """The server's renderings of one map, captioned with the target."""
    target = attribution.target
    name = f"{target.label} ({target.probability:.1%})" if target is not None else "map"
    return [
        (f"{kind}: {name}", picture)
        for kind, picture in (("overlay", attribution.overlay), ("heatmap", attribution.heatmap))
        if picture is not None
    ]


def result_pictures(result: AttributionResult) -> list[tuple[str, PILImage.Image]]:
    pictures = []
    for index, image in enumerate(result.images):
        for caption, picture in (p for a in image.attributions for p in attribution_pictures(a)):
            pictures.append((f"image {index}, {result.method}, {caption}", picture))
    return pictures


def plot(
    results: Mapping[str, AttributionResult] | Sequence[AttributionResult],
    image: ImageInput | None = None,
    *,
    image_index: int = 0,
    target_index: int = 0,
    signed: bool | None = None,
    column_width: float = 3.0,
) -> Figure:
    """Several methods' maps of one image side by side, each with its colour bar, like Captum's
    `visualize_image_attr_multiple`.

    Args:
        results: attribution results, one per method: a mapping title → result, or a sequence (titled
            by each result's method). Each must carry the raw map (`outputs` including "map"); ask
            gradient methods for `aggregation="none"` to let `signed` choose how channels combine.
        image: the image the maps explain (a path, bytes, PIL image or array), drawn first and, in
            grey, under each map. Optional.
        image_index: which image of each result to draw.
        target_index: which target of that image to draw.
        signed: draw maps signed (blue–white–red around zero) or as |value| (inferno). Default: a
            per-channel map shows |max| over its channels, a one-channel map its sign when it has one.
        column_width: inches per column.

    Returns:
        The matplotlib Figure (Jupyter shows it; `figure.savefig(path)` writes it).

    Example:
        >>> figure = plot({"saliency": saliency_result, "grad_cam": cam_result}, image="star.png")
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "glassbox_client.plot needs matplotlib: pip install 'glassbox-client[plot]'"
        ) from exc
    titled = list(results.items()) if isinstance(results, Mapping) else [(r.method, r) for r in results]
    if not titled:
        raise ValueError("plot needs at least one result")
    background = None if image is None else as_pil(image)
    columns = len(titled) + (background is not None)
    figure, grid = plt.subplots(
        1, columns, figsize=(column_width * columns, column_width * 1.15), squeeze=False
    )
    axes = list(grid[0])
    if background is not None:
        axis = axes.pop(0)
        axis.imshow(background)
        axis.set_title("image")
        axis.axis("off")
    for axis, (title, result) in zip(axes, titled, strict=True):
        attribution = result.images[image_index].attributions[target_index]
        if attribution.map is None:
            raise ValueError(f"{title}: the result has no raw map; ask for outputs including 'map'")
        values, is_signed = _picture_values(attribution.map, signed)
        scale = float(np.percentile(np.abs(values), CLIP_PERCENTILE)) or float(np.abs(values).max()) or 1.0
        if background is not None:
            grey = background.convert("L").resize(
                (values.shape[1], values.shape[0]), PILImage.Resampling.BILINEAR
            )
            axis.imshow(np.asarray(grey), cmap="gray", alpha=0.5)
        colours = axis.imshow(
            values,
            cmap="RdBu_r" if is_signed else "inferno",
            vmin=-scale if is_signed else 0.0,
            vmax=scale,
            alpha=0.85 if background is not None else 1.0,
        )
        figure.colorbar(colours, ax=axis, fraction=0.046, pad=0.04)
        target = attribution.target
        axis.set_title(f"{title}\n{target.label} ({target.probability:.1%})" if target is not None else title)
        axis.axis("off")
    figure.tight_layout()
    return figure


def as_pil(image: ImageInput) -> PILImage.Image:
    """Any client image input as a PIL RGB image."""
    from glassbox_client.images import _normalise_layout

    if isinstance(image, PILImage.Image):
        return image.convert("RGB")
    if isinstance(image, bytes):
        return PILImage.open(io.BytesIO(image)).convert("RGB")
    if isinstance(image, np.ndarray):
        array = _normalise_layout(image)
        if array.dtype != np.uint8:
            array = np.round(np.clip(np.transpose(array, (1, 2, 0)), 0, 1) * 255).astype(np.uint8)
        return PILImage.fromarray(array)
    return PILImage.open(image).convert("RGB")


def _picture_values(values: np.ndarray, signed: bool | None) -> tuple[np.ndarray, bool]:
    """The [H, W] values a plot shows and whether they are signed."""
    if values.ndim == 3:
        if signed:
            return values.sum(axis=0), True
        return np.abs(values).max(axis=0), False
    if signed is False:
        return np.abs(values), False
    return values, bool((values < 0).any())
