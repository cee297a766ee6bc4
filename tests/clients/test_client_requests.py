"""Request building from plain Python values (no server needed): parameters, enums, sub-messages."""

from __future__ import annotations

import numpy as np
import pytest
from glassbox_client._generated.glassbox.v1 import priority_pb2
from glassbox_client.images import to_proto_image
from glassbox_client.jobs import submit_request
from glassbox_client.requests import attribute_request, output_options, predict_request, target_spec


def _output(outputs: tuple[str, ...] = ("map",), **overrides: object):
    options = {"aggregation": None, "colormap": None, "overlay_alpha": None, "clip_percentile": None}
    return output_options(outputs, **{**options, "original_size": False, **overrides})


def _request(method: str, **params: object):
    output = _output(aggregation="l2", original_size=True)
    return attribute_request(
        b"png",
        model="m",
        method=method,
        version="",
        targets=None,
        top_k=None,
        image_targets=None,
        output=output,
        params=params,
    )


def test_method_parameters_enums_and_nested_choices() -> None:
    base = ("integrated_gradients", {"steps": 4})
    request = _request("smoothgrad", samples=8, variant="vargrad", base=base)
    assert request.WhichOneof("method") == "smoothgrad"
    assert request.smoothgrad.samples == 8 and request.smoothgrad.variant == 3
    assert request.smoothgrad.WhichOneof("base") == "integrated_gradients"
    assert request.smoothgrad.integrated_gradients.steps == 4
    assert request.output.aggregation == 4 and request.output.original_size and request.output.map
    plain = _request("saliency")
    assert plain.WhichOneof("method") == "saliency"
    image = np.zeros((4, 4, 3), np.uint8)
    baseline = _request("integrated_gradients", baseline="IMAGE", baseline_image=image)
    assert baseline.integrated_gradients.baseline == 5
    assert list(baseline.integrated_gradients.baseline_image.pixels.shape) == [4, 4, 3]


def test_targets_are_indices_labels_or_top_k() -> None:
    assert list(target_spec([0, 2], None).class_indices) == [0, 2]
    assert list(target_spec("star", None).labels) == ["star"]
    assert target_spec(None, 3).top_k == 3
    assert target_spec(None, None) is None
    with pytest.raises(ValueError, match="targets or top_k, not both"):
        target_spec(1, 2)
    with pytest.raises(ValueError, match="all class indices"):
        target_spec([1, "star"], None)


def test_job_specs_take_dicts_and_bare_class_references() -> None:
    by_label = submit_request("class_visualisation", "m", {"target": "star", "steps": 3})
    assert by_label.class_visualisation.target.label == "star" and by_label.class_visualisation.model == "m"
    by_index = submit_request("class_visualisation", "m", {"target": 4})
    assert by_index.class_visualisation.target.index == 4
    channel = {"channel": {"layer": "f.3", "channel": 2}}
    objective = {"sum": {"terms": [{"weight": 0.5, "objective": channel}]}}
    dream = submit_request("deepdream", "m", {"image": b"png", "objective": objective})
    term = dream.deepdream.objective.sum.terms[0]
    assert term.weight == 0.5 and term.objective.channel.channel == 2
    assert dream.deepdream.image.encoded == b"png"
    with pytest.raises(ValueError, match="has no parameter 'stepz'"):
        submit_request("class_visualisation", "m", {"stepz": 3})


def test_output_and_enum_errors_list_the_choices() -> None:
    with pytest.raises(ValueError, match="subset of"):
        _output(("png",))
    with pytest.raises(ValueError, match="colormap must be one of viridis, inferno, jet, gray, diverging"):
        _output(colormap="rainbow")


def test_images_keep_their_layout_and_values() -> None:
    chw = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    message = to_proto_image(np.transpose(chw, (1, 2, 0)))
    assert list(message.pixels.shape) == [3, 5, 7]
    np.testing.assert_array_equal(np.frombuffer(message.pixels.data, "<f4").reshape(3, 5, 7), chw)
    with pytest.raises(ValueError, match=r"uint8 .* or float"):
        to_proto_image(np.zeros((4, 4, 3), np.int32))


def test_priority_defaults_to_interactive_and_is_checked() -> None:
    interactive = _request("saliency")
    assert interactive.priority == priority_pb2.REQUEST_PRIORITY_INTERACTIVE
    background = predict_request(b"png", "m", "", 1, "background")
    assert background.priority == priority_pb2.REQUEST_PRIORITY_BACKGROUND
    with pytest.raises(ValueError, match="interactive, background"):
        predict_request(b"png", "m", "", 1, "urgent")
