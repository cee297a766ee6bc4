"""RISE, Sobol attribution and HSIC attribution over gRPC equal an independent float64 implementation of
each paper's estimator, written here, on the same masks (the server's mask generators with the same
seed), on the trained demo CNN served by torch and by ONNX Runtime. The float64 scores come from the
demo network in float64. Every target of an image shares one set of masked forward passes, and every
parameter is range-checked with its field named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from glassbox.methods.hsic import hsic_masks
from glassbox.methods.rise import RiseParams, rise_estimate, rise_masks, rise_upsample
from glassbox.methods.sobol import sobol_masks
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    relative_error,
    request,
)
from support.model_repository import copy_shipped_model
from support.servers import RunningServer

MODELS = ("shapes", "shapes-onnx")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("black-box-models")
    for name in MODELS:
        copy_shipped_model(root, name)
    return root


@pytest.fixture(scope="module")
def stub(
    start_server: Callable[..., RunningServer], repository: Path
) -> attribution_service_pb2_grpc.AttributionServiceStub:
    server = start_server(model_repository=repository, cache={"enabled": False})
    return attribution_service_pb2_grpc.AttributionServiceStub(server.channel)


@pytest.fixture(scope="module")
def logits64(repository: Path) -> Callable[[np.ndarray], np.ndarray]:
    """float64 logits of float64 pixels [n, 3, H, W] (the demo network in float64)."""
    network = reference_network(repository, "shapes").double().requires_grad_(False)

    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([network(torch.from_numpy(b)).numpy() for b in np.array_split(pixels, 8)])

    return run


def blend(image: np.ndarray, masks: np.ndarray, baseline: float) -> np.ndarray:
    """x · m + b · (1 − m) for masks [n, H, W]: [n, 3, H, W]."""
    m = masks[:, None]
    return image[None] * m + baseline * (1.0 - m)


def paper_masks(grids: torch.Tensor, shifts: torch.Tensor, height: int, width: int) -> np.ndarray:
    """float64 [n, H, W]: the paper's masks written out directly: each grid upsampled bilinearly to
    (s + 1) cells of ceil(side / s) pixels, then cropped at its shift."""
    s = grids.shape[-1]
    cell_h, cell_w = -(-height // s), -(-width // s)
    up = torch.nn.functional.interpolate(
        grids.double()[:, None],
        size=((s + 1) * cell_h, (s + 1) * cell_w),
        mode="bilinear",
        align_corners=False,
    )[:, 0]
    crops = [up[n, dy : dy + height, dx : dx + width] for n, (dy, dx) in enumerate(shifts.tolist())]
    return torch.stack(crops).numpy()


def cells_to_pixels(values: np.ndarray, side: int) -> np.ndarray:
    """A [.., s, s] grid shown on side × side pixels (side a multiple of s)."""
    repeat = side // values.shape[-1]
    return np.repeat(np.repeat(values, repeat, axis=-2), repeat, axis=-1)


@pytest.mark.parametrize("model", MODELS)
def test_rise_equals_the_papers_estimator(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, logits64: Callable, model: str
) -> None:
    params = RiseParams(masks=96, grid_size=5, probability=0.4, seed=7, baseline_value=0.2)
    message = pb.RiseParams(masks=96, grid_size=5, probability=0.4, seed=7, baseline_value=0.2)
    response = attribute(stub, request(model, IMAGES[:2], rise=message))
    ours = maps(response)
    grids, shifts = rise_masks(params, 64, 64)
    masks = paper_masks(grids, shifts, 64, 64)
    for i, image in enumerate(IMAGES[:2].double().numpy()):
        logits = logits64(blend(image, masks, 0.2))
        probabilities = np.exp(logits - logits.max(1, keepdims=True))
        probabilities /= probabilities.sum(1, keepdims=True)
        for j, target in enumerate(TARGETS):
            # Petsiuk et al. eq. 6: S = 1/(N p) Σ_i f(I ⊙ M_i) M_i
            reference = sum(probabilities[n, target] * masks[n] for n in range(len(masks))) / (96 * 0.4)
            assert relative_error(ours[j, i], reference) <= TOLERANCE
    assert response.stats.forward_passes == 2 * (1 + 96)  # the targets share the masked passes


@pytest.mark.parametrize(
    ("height", "width", "grid_size"), [(64, 64, 5), (64, 48, 4), (224, 224, 7), (97, 131, 11)]
)
def test_rise_masks_and_sums_are_separable_products(height: int, width: int, grid_size: int) -> None:
    """The server never upsamples a whole (s + 1)-cell plane: each mask is rows · grid · columnsᵀ, and the
    map's sum over masks groups the masks by row shift. Both equal the paper's masks written out."""
    grids, shifts = rise_masks(RiseParams(masks=40, grid_size=grid_size, seed=3), height, width)
    reference = paper_masks(grids, shifts, height, width)
    assert (
        np.abs(rise_upsample(grids, shifts, grid_size, height, width).double().numpy() - reference).max()
        < 1e-6
    )
    scores = torch.rand(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    summed = np.einsum("nk,nhw->khw", scores.numpy(), reference)
    ours = rise_estimate(grids, shifts, scores, grid_size, height, width).numpy()
    assert np.abs(ours - summed).max() <= 1e-12 * np.abs(summed).max()


def test_rise_masks_are_smooth_shifted_grids() -> None:
    """The masks are the paper's: values in [0, 1], equal to the upsampled grid cell at its centre."""
    grids, shifts = rise_masks(RiseParams(masks=20, grid_size=4, seed=1), 64, 64)
    masks = rise_upsample(grids, shifts, 4, 64, 64)
    assert masks.shape == (20, 64, 64) and masks.min() >= 0 and masks.max() <= 1
    assert torch.all((shifts >= 0) & (shifts < 16))
    # the grid spans (4 + 1) · 16 = 80 pixels, 20 a cell: the centre of cell (a, b) lies at
    # (20a + 9.5, 20b + 9.5) of the upsampled grid, shifted by the crop
    for n in range(20):
        for a in range(4):
            for b in range(4):
                y, x = 20 * a + 10 - int(shifts[n, 0]), 20 * b + 10 - int(shifts[n, 1])
                if 0 <= y < 64 and 0 <= x < 64:
                    near = masks[n, max(y - 1, 0) : y + 1, max(x - 1, 0) : x + 1]
                    assert torch.allclose(near.mean(), grids[n, a, b], atol=0.07)


@pytest.mark.parametrize("model", MODELS)
def test_sobol_equals_jansens_estimator(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, logits64: Callable, model: str
) -> None:
    grid, designs = 4, 8
    response = attribute(
        stub, request(model, IMAGES[:2], sobol=pb.SobolParams(grid_size=grid, designs=designs))
    )
    ours = maps(response)
    low = sobol_masks(grid, designs).double().numpy()  # A, B, C_0 .. C_15
    a_masks, b_masks = low[:designs].reshape(designs, -1), low[designs : 2 * designs].reshape(designs, -1)
    for i, image in enumerate(IMAGES[:2].double().numpy()):
        scores = logits64(blend(image, cells_to_pixels(low, 64), 0.0))
        for j, target in enumerate(TARGETS):
            f_a = scores[:designs, target]
            variance = f_a.var(ddof=1)
            indices = np.empty(grid * grid)
            for cell in range(grid * grid):
                c = a_masks.copy()
                c[:, cell] = b_masks[:, cell]  # C_i: A with column i from B
                rows = slice((2 + cell) * designs, (3 + cell) * designs)
                assert np.array_equal(low[rows].reshape(designs, -1), c)
                f_c = scores[rows, target]
                # Fel et al. eq. 5 (Jansen): ST_i = (1/2N) Σ_j (f(A_j) − f(C_ij))² / V̂
                indices[cell] = np.mean((f_a - f_c) ** 2) / 2.0 / variance
            reference = cells_to_pixels(indices.reshape(grid, grid), 64)
            assert relative_error(ours[j, i], reference) <= TOLERANCE
    assert response.stats.forward_passes == 2 * (1 + designs * (grid * grid + 2))


def test_sobol_designs_are_the_sobol_sequence() -> None:
    """A and B are the two halves of the unscrambled Sobol points in 2d dimensions (scipy's sequence)."""
    from scipy.stats import qmc

    low = sobol_masks(3, 8).double().numpy()
    points = qmc.Sobol(18, scramble=False).random(8)
    assert np.allclose(low[:8].reshape(8, 9), points[:, :9]) and np.allclose(
        low[8:16].reshape(8, 9), points[:, 9:]
    )


@pytest.mark.parametrize("model", MODELS)
def test_hsic_equals_the_papers_estimator(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, logits64: Callable, model: str
) -> None:
    grid, designs, seed = 4, 48, 5
    params = pb.HsicParams(grid_size=grid, designs=designs, seed=seed, baseline_value=0.5)
    response = attribute(stub, request(model, IMAGES[:2], hsic=params))
    ours = maps(response)
    low = hsic_masks(grid, designs, seed).double().numpy()
    assert set(np.unique(low)) == {0.0, 1.0}
    assert np.all(
        low.sum(axis=0) == designs // 2
    )  # a Latin hypercube halved: each cell on in half the designs
    centring = np.eye(designs) - 1.0 / designs
    for i, image in enumerate(IMAGES[:2].double().numpy()):
        scores = logits64(blend(image, cells_to_pixels(low, 64), 0.5))
        for j, target in enumerate(TARGETS):
            y = scores[:, target]
            distances = np.abs(y[:, None] - y[None, :])[np.triu_indices(designs, 1)]
            gram = np.exp(-((y[:, None] - y[None, :]) ** 2) / (2 * np.median(distances) ** 2))
            values = np.empty(grid * grid)
            for cell in range(grid * grid):
                x = low[:, cell // grid, cell % grid]
                dirac = (x[:, None] == x[None, :]).astype(float)
                # Novello et al. eq. 4: HSIC = tr(K H L H) / (n − 1)²
                values[cell] = np.trace(dirac @ centring @ gram @ centring) / (designs - 1) ** 2
            reference = cells_to_pixels(values.reshape(grid, grid), 64)
            assert relative_error(ours[j, i], reference) <= TOLERANCE
    assert response.stats.forward_passes == 2 * (1 + designs)


BAD = [
    ("rise", pb.RiseParams(masks=0), "rise.masks"),
    ("rise", pb.RiseParams(masks=20000), "rise.masks"),
    ("rise", pb.RiseParams(grid_size=1), "rise.grid_size"),
    ("rise", pb.RiseParams(grid_size=65), "rise.grid_size"),
    ("rise", pb.RiseParams(probability=0.0), "rise.probability"),
    ("rise", pb.RiseParams(probability=1.0), "rise.probability"),
    ("rise", pb.RiseParams(baseline_value=-0.5), "rise.baseline_value"),
    ("sobol", pb.SobolParams(grid_size=1), "sobol.grid_size"),
    ("sobol", pb.SobolParams(grid_size=17), "sobol.grid_size"),
    ("sobol", pb.SobolParams(designs=1), "sobol.designs"),
    ("sobol", pb.SobolParams(designs=2000), "sobol.designs"),
    ("sobol", pb.SobolParams(grid_size=16, designs=100), "sobol.designs"),
    ("sobol", pb.SobolParams(baseline_value=2.0), "sobol.baseline_value"),
    ("hsic", pb.HsicParams(grid_size=1), "hsic.grid_size"),
    ("hsic", pb.HsicParams(grid_size=33), "hsic.grid_size"),
    ("hsic", pb.HsicParams(designs=3), "hsic.designs"),
    ("hsic", pb.HsicParams(designs=20000), "hsic.designs"),
    ("hsic", pb.HsicParams(baseline_value=1.5), "hsic.baseline_value"),
]


@pytest.mark.parametrize(
    ("method", "params", "field"), BAD, ids=[f"{field}-{n}" for n, (_, _, field) in enumerate(BAD)]
)
def test_bad_parameters_name_their_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, method: str, params: object, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes-onnx", IMAGES[:1], **{method: params}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)
