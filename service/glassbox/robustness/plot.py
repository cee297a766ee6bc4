"""PNG figures of a robustness report, drawn with PIL (no matplotlib at run time, as in `render`):
accuracy against ε, one line per attack, and adversarial examples beside their originals."""

from __future__ import annotations

import io

import torch
from PIL import Image, ImageDraw, ImageFont

from glassbox.robustness.report import Example, RobustnessReport

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 60, 170, 30, 50
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
EXAMPLE_SIZE = 128


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def accuracy_plot(report: RobustnessReport) -> bytes:
    """Accuracy (0..1) against ε per attack, each line starting at the clean accuracy at ε = 0."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    lines: dict[str, list[tuple[float, float]]] = {}
    for result in report.attacks:
        lines.setdefault(f"{result.attack} ({result.threat_model})", [(0.0, report.clean_accuracy)]).append(
            (result.epsilon, result.robust_accuracy)
        )
    largest = max((eps for points in lines.values() for eps, _ in points), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(epsilon: float, accuracy: float) -> tuple[float, float]:
        return LEFT + epsilon / largest * plot_w, TOP + (1.0 - accuracy) * plot_h

    draw.rectangle((LEFT, TOP, LEFT + plot_w, TOP + plot_h), outline="black")
    for tick in range(6):
        accuracy = tick / 5
        y = at(0.0, accuracy)[1]
        draw.line((LEFT - 4, y, LEFT + plot_w, y), fill=(225, 225, 225) if 0 < tick < 5 else "black")
        draw.text((LEFT - 34, y - 6), f"{accuracy:.1f}", fill="black", font=font)
        epsilon = largest * tick / 5
        x = at(epsilon, 0.0)[0]
        draw.line((x, TOP + plot_h, x, TOP + plot_h + 4), fill="black")
        draw.text((x - 14, TOP + plot_h + 8), f"{epsilon:.3g}", fill="black", font=font)
    draw.text((LEFT + plot_w // 2 - 60, HEIGHT - 20), "epsilon (pixel units)", fill="black", font=font)
    draw.text((6, TOP - 20), "accuracy", fill="black", font=font)
    draw.text((LEFT, 8), f"{report.model} v{report.version}: accuracy under attack", fill="black", font=font)
    for i, (label, points) in enumerate(lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [at(eps, acc) for eps, acc in sorted(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        legend_y = TOP + 10 + 18 * i
        draw.line((WIDTH - RIGHT + 10, legend_y + 6, WIDTH - RIGHT + 30, legend_y + 6), fill=colour, width=2)
        draw.text((WIDTH - RIGHT + 36, legend_y), label, fill="black", font=font)
    return _png(image)


def _tile(pixels: torch.Tensor) -> Image.Image:
    array = (pixels.clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(array).resize((EXAMPLE_SIZE, EXAMPLE_SIZE), Image.Resampling.NEAREST)


def example_png(example: Example, labels: tuple[str, ...]) -> bytes:
    """Original | adversarial | perturbation (scaled so its largest |value| fills [0, 1] around grey),
    with the predictions underneath."""
    delta = example.adversarial - example.original
    scale = float(delta.abs().max()) or 1.0
    tiles = [_tile(example.original), _tile(example.adversarial), _tile(delta / (2 * scale) + 0.5)]
    image = Image.new("RGB", (3 * EXAMPLE_SIZE + 20, EXAMPLE_SIZE + 46), "white")
    for i, tile in enumerate(tiles):
        image.paste(tile, (i * (EXAMPLE_SIZE + 10), 0))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    before = _prediction(example.original_logits, labels)
    after = _prediction(example.adversarial_logits, labels)
    draw.text((2, EXAMPLE_SIZE + 4), f"true {labels[example.label]}; {before}", fill="black", font=font)
    draw.text(
        (EXAMPLE_SIZE + 12, EXAMPLE_SIZE + 18),
        f"{example.attack} eps={example.epsilon:.3g}: {after}",
        fill="black",
        font=font,
    )
    draw.text(
        (2 * EXAMPLE_SIZE + 22, EXAMPLE_SIZE + 32), f"delta x{0.5 / scale:.3g}", fill="black", font=font
    )
    return _png(image)


def _prediction(logits: torch.Tensor, labels: tuple[str, ...]) -> str:
    probabilities = logits.softmax(dim=0)
    index = int(probabilities.argmax())
    return f"{labels[index]} {float(probabilities[index]):.2f}"
