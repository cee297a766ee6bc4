"""Notebook display: results show as pictures (`_repr_png_`, `_repr_html_`, as IPython asks for them)
and `glassbox_client.plot` draws several methods side by side with matplotlib."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from glassbox_client import GlassboxClient, plot
from PIL import Image
from support.paths import ROOT
from support.servers import RunningServer

matplotlib.use("Agg")

STAR = ROOT / "docs" / "images" / "star.png"


def decoded(data: bytes | None) -> Image.Image:
    assert data is not None
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


@pytest.fixture(scope="module")
def glassbox(server: RunningServer) -> GlassboxClient:
    with GlassboxClient(server.address, timeout=60) as client:
        yield client


def test_attribution_results_show_their_pictures(glassbox: GlassboxClient) -> None:
    result = glassbox.attribute(
        [STAR, STAR], model="shapes", method="saliency", outputs=["map", "heatmap", "overlay"]
    )
    attribution = result.images[0].attributions[0]
    assert decoded(attribution._repr_png_()).size == attribution.overlay.size
    html = attribution._repr_html_()
    assert html.count("<img") == 2 and "star" in html
    strip = decoded(result._repr_png_())
    assert strip.width > 4 * attribution.overlay.width  # two images × (overlay, heatmap)
    assert result._repr_html_().count("<img") == 4

    bare = glassbox.attribute(STAR, model="shapes", method="saliency", outputs=["map"])
    assert bare._repr_png_() is None and bare.images[0].attributions[0]._repr_png_() is None


def test_job_results_show_their_images(glassbox: GlassboxClient) -> None:
    job = glassbox.jobs.run(
        "class_visualisation", model="shapes", target="star", steps=4, height=32, width=32
    )
    assert decoded(job.result._repr_png_()).size == (32, 32)
    assert "succeeded" in job._repr_html_() and "<img" in job._repr_html_()


def test_plot_draws_methods_side_by_side_with_colour_bars(glassbox: GlassboxClient, tmp_path: Path) -> None:
    results = {
        method: glassbox.attribute(STAR, model="shapes", method=method, outputs=["map"], aggregation="none")
        for method in ("saliency", "integrated_gradients", "grad_cam")
    }
    figure = plot(results, image=STAR)
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[:4] == [
        "image",
        "saliency\nstar (100.0%)",
        "integrated_gradients\nstar (100.0%)",
        "grad_cam\nstar (100.0%)",
    ]
    assert len(figure.axes) == 4 + 3  # the image, three maps, three colour bars
    saliency_image = figure.axes[1].images[-1]
    assert saliency_image.get_cmap().name == "inferno"  # a per-channel map shows |max| by default
    signed = plot(list(results.values()), signed=True)
    assert signed.axes[0].images[-1].get_cmap().name == "RdBu_r"
    low, high = signed.axes[0].images[-1].get_clim()
    assert high > 0 and low == -high
    out = tmp_path / "methods.png"
    figure.savefig(out)
    assert np.asarray(Image.open(out)).std() > 10

    with pytest.raises(ValueError, match="no raw map"):
        plot(
            {"overlay only": glassbox.attribute(STAR, model="shapes", method="saliency", outputs=["overlay"])}
        )
