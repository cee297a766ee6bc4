"""Styles of the shapes generator: which sizes, thicknesses, rotations, backgrounds and noise it draws.

Three styles ship:

- `CLASSIC`: the original generator, the default of `shapes.generate`. Its pixels never change for a given
  seed (the shipped `shapes-val` sets, the sample images and the tests that pin generated images rely on
  that), so `shapes.generate` renders it along its own path, drawing in its own order; the values here
  document it.
- `TRAINING`: the widened generator the `shapes` demo model learns from (with classic images mixed in):
  thin to chunky cross arms, small to large shapes, shapes partly cut by the border, stretched shapes,
  outlines of the classes an outline keeps (a square, triangle, cross or star drawn as an outline is still
  one; a circle's outline would be a ring), plain, strong-noise and high-contrast blob backgrounds, and
  low-contrast objects.
- `VARIANT`: a held-out generator variant for measuring generalisation: every continuous parameter is
  drawn from values `TRAINING` never draws (gaps inside its ranges, and just beyond them for stretch and
  noise), and a quarter of the backgrounds are a kind training never shows (radial vignettes).

A range is a union of intervals (`Intervals`), drawn uniformly over its total length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Intervals = tuple[tuple[float, float], ...]
"""A union of closed intervals [low, high]; `draw` picks uniformly over their total length."""


@dataclass(frozen=True)
class Style:
    """The ranges one style of the shapes generator draws from (per image, independently)."""

    name: str
    sizes: Intervals  # the larger bounding-box side of the (uncut) shape, as a fraction of the image side
    cross_arms: Intervals  # cross arm half-width, the arm half-length being 1
    star_inners: Intervals  # star inner radius, the tips being on the unit circle
    ring_inners: Intervals  # ring inner radius, the outer radius being 1
    cross_tilts: Intervals  # |rotation| of a cross in radians (a plus, not an x); other shapes turn freely
    stretches: Intervals  # |ln(aspect ratio)| of the stretch along the shape's own axes
    border_cut: float  # probability that the shape's box may run past the image border
    cuts: Intervals  # then: how far it may run past, as a fraction of the box side
    outline: float  # probability that a square, triangle, cross or star is drawn as an outline
    outline_widths: Intervals  # then: the outline's width as a fraction of the shape's inradius (arm width)
    backgrounds: tuple[str, ...]  # background kinds, drawn uniformly
    background_spread: float  # max per-channel difference between a background's two colours
    noise: Intervals  # standard deviation of the per-pixel Gaussian noise
    min_contrast: float  # min RGB distance between the object colour and every background colour


CLASSIC = Style(
    name="classic",
    sizes=((0.3, 0.7),),
    cross_arms=((0.22, 0.36),),
    star_inners=((0.38, 0.5),),
    ring_inners=((0.45, 0.65),),
    cross_tilts=((0.0, math.pi / 9),),
    stretches=((0.0, 0.0),),
    border_cut=0.0,
    cuts=((0.0, 0.0),),
    outline=0.0,
    outline_widths=((0.0, 0.0),),
    backgrounds=("noise", "gradient", "stripes", "blobs"),
    background_spread=0.3,
    noise=((0.0, 0.05),),
    min_contrast=0.45,
)

TRAINING = Style(
    name="training",
    sizes=((0.22, 0.42), (0.5, 0.9)),
    cross_arms=((0.13, 0.2), (0.25, 0.4)),
    star_inners=((0.3, 0.4), (0.45, 0.55)),
    ring_inners=((0.35, 0.5), (0.57, 0.75)),
    cross_tilts=((0.0, 0.25), (0.33, 0.45)),
    stretches=((0.0, 0.12), (0.18, 0.26)),
    border_cut=0.3,
    cuts=((0.05, 0.15), (0.2, 0.25)),
    outline=0.3,
    outline_widths=((0.25, 0.4), (0.5, 0.65)),
    backgrounds=("plain", "noise", "gradient", "stripes", "blobs"),
    background_spread=0.5,
    noise=((0.0, 0.05), (0.08, 0.12)),
    min_contrast=0.35,
)

VARIANT = Style(
    name="variant",
    sizes=((0.42, 0.5),),
    cross_arms=((0.2, 0.25),),
    star_inners=((0.4, 0.45),),
    ring_inners=((0.5, 0.57),),
    cross_tilts=((0.25, 0.33),),
    stretches=((0.12, 0.18), (0.26, 0.28)),
    border_cut=0.3,
    cuts=((0.15, 0.2),),
    outline=0.3,
    outline_widths=((0.4, 0.5),),
    backgrounds=("radial", "noise", "stripes", "blobs"),
    background_spread=0.55,
    noise=((0.05, 0.08), (0.12, 0.13)),
    min_contrast=0.35,
)

STYLES: dict[str, Style] = {style.name: style for style in (CLASSIC, TRAINING, VARIANT)}
"""The shipped styles by name."""


def draw(rng: np.random.Generator, intervals: Intervals, n: int) -> np.ndarray:
    """`n` values drawn uniformly over the union of `intervals` (float64 [n])."""
    lows = np.array([low for low, _ in intervals])
    lengths = np.array([high - low for low, high in intervals])
    offset = rng.uniform(0, 1, n) * lengths.sum()
    ends = np.cumsum(lengths)
    index = np.minimum(np.searchsorted(ends, offset, side="right"), len(intervals) - 1)
    return lows[index] + offset - (ends[index] - lengths[index])
