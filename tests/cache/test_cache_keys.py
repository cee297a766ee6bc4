"""Canonical cache keys: equivalent requests share a key; any change of meaning changes it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pytest
import torch
from glassbox.cache import keys
from glassbox.cache.keys import digest, result_key
from glassbox_client._generated.glassbox.v1 import tensor_pb2


@dataclass(frozen=True)
class FakeModel:
    name: str = "shapes"
    version: str = "1"
    weights_digest: str = "ab" * 32


class Variant(Enum):
    SMOOTHGRAD = "smoothgrad"
    VARGRAD = "vargrad"


@dataclass(frozen=True)
class SmoothGradRequest:
    samples: int = 25
    noise_fraction: float = 0.15
    seed: int = 0
    variant: Variant = Variant.SMOOTHGRAD


PIXELS = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
BASE: dict[str, Any] = {
    "model": FakeModel(),
    "method": "smoothgrad",
    "parameters": SmoothGradRequest(),
    "targets": ((3,),),
    "pixels": PIXELS,
    "options": {"map": True, "aggregation": "sum", "original_size": False},
}


def key(**changes: Any) -> str:
    return result_key("glassbox", "attribution", **{**BASE, **changes})


def test_key_is_namespaced_versioned_sha256() -> None:
    namespace, kind, version, hexdigest = key().split(":")
    assert (namespace, kind, version) == ("glassbox", "attribution", f"v{keys.KEY_FORMAT_VERSION}")
    assert len(hexdigest) == 64 and int(hexdigest, 16) >= 0
    assert result_key("tenant-a", "attribution", **BASE).startswith("tenant-a:attribution:")


def test_equivalent_requests_share_a_key() -> None:
    assert key() == key()
    # An omitted field and its explicit default: the canonical request has defaults filled in.
    assert key(parameters=SmoothGradRequest(samples=25, noise_fraction=0.15)) == key()
    # Mapping order, equal tensors in new objects, numpy vs torch of the same pixels.
    assert key(options={"original_size": False, "aggregation": "sum", "map": True}) == key()
    assert key(pixels=PIXELS.clone()) == key()
    assert key(pixels=PIXELS.numpy().copy()) == key()
    assert key(model=FakeModel()) == key()


def test_proto_fields_left_unset_and_set_to_their_default_share_a_key() -> None:
    unset = tensor_pb2.Tensor(shape=[2, 2])
    explicit = tensor_pb2.Tensor(shape=[2, 2], dtype=tensor_pb2.DATA_TYPE_UNSPECIFIED, data=b"")
    assert key(options=unset) == key(options=explicit)
    assert key(options=unset) != key(options=tensor_pb2.Tensor(shape=[2, 3]))


@pytest.mark.parametrize(
    "change",
    [
        {"model": FakeModel(weights_digest="cd" * 32)},
        {"model": FakeModel(version="2")},
        {"model": FakeModel(name="shapes-shortcut")},
        {"method": "saliency"},
        {"parameters": SmoothGradRequest(samples=26)},
        {"parameters": SmoothGradRequest(noise_fraction=np.nextafter(0.15, 1.0))},
        {"parameters": SmoothGradRequest(seed=1)},
        {"parameters": SmoothGradRequest(variant=Variant.VARGRAD)},
        {"targets": ((4,),)},
        {"targets": ((3, 4),)},
        {"targets": ((3,), (3,))},
        {"pixels": PIXELS.to(torch.float64)},
        {"pixels": PIXELS.reshape(1, 3, 4, 16)},
        {"options": {**BASE["options"], "map": False}},
        {"options": {**BASE["options"], "aggregation": "abs_max"}},
        {"options": {**BASE["options"], "heatmap_png": False}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_change_of_meaning_changes_the_key(change: dict[str, Any]) -> None:
    assert key(**change) != key()


def test_one_pixel_changed_by_one_ulp_changes_the_key() -> None:
    pixels = PIXELS.clone()
    pixels[0, 1, 2, 3] = torch.nextafter(pixels[0, 1, 2, 3], torch.tensor(2.0))
    assert key(pixels=pixels) != key()


def test_bumping_the_format_version_changes_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setattr(keys, "KEY_FORMAT_VERSION", keys.KEY_FORMAT_VERSION + 1)
    after = key()
    assert after != before
    assert after.split(":")[-1] != before.split(":")[-1]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("ab", "c"), ("a", "bc")),
        (1, 1.0),
        (1, "1"),
        (1, True),
        (b"x", "x"),
        ([1, 2], (1, 2)),
        ({1, 2}, [1, 2]),
        (None, ""),
        ({"a": 1}, {"a": 1, "b": None}),
        (0.0, -0.0),
        (Variant.SMOOTHGRAD, "smoothgrad"),
        (np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)),
        (np.zeros(4, np.float32), np.zeros(4, np.int32)),
        (
            SmoothGradRequest(),
            {"samples": 25, "noise_fraction": 0.15, "seed": 0, "variant": Variant.SMOOTHGRAD},
        ),
    ],
)
def test_values_of_different_meaning_never_collide(left: Any, right: Any) -> None:
    assert digest(left) != digest(right)


def test_unordered_collections_are_order_independent() -> None:
    assert digest({"b": 2, "a": 1}) == digest({"a": 1, "b": 2})
    assert digest({3, 1, 2}) == digest({2, 3, 1})


def test_non_contiguous_and_big_endian_arrays_hash_by_value() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert digest(array.T) == digest(np.ascontiguousarray(array.T))
    assert digest(array.astype(">f4")) == digest(array)


def test_unsupported_types_are_refused_rather_than_hashed_by_identity() -> None:
    with pytest.raises(TypeError, match="object"):
        digest(object())
