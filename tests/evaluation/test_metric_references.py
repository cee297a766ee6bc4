"""Each metric against a reference on a few inputs: Quantus 0.6 where it implements the same metric
(deletion = PixelFlipping with a constant baseline, ROAD's imputation, pointing game, relevance mass
accuracy, sparseness, the randomisation check's Spearman and SSIM), and a direct implementation of the
paper's formula written here where Quantus draws its own noise (max-sensitivity, the ROAD curve).
The randomisation check itself: top layer first, cascading vs independent, and the served model untouched."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import quantus
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.config import AttributionSettings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.evaluation import complexity, curves, localisation, randomisation, road, sensitivity
from glassbox.evaluation.spec import PerturbationBaseline
from glassbox.models.repository import ModelRepository
from glassbox.serving.execution import SCHEDULED
from quantus.functions.perturb_func import noisy_linear_imputation
from quantus.functions.similarity_func import correlation_spearman
from quantus.functions.similarity_func import ssim as quantus_ssim
from support.paths import MODELS

warnings.filterwarnings("ignore", module="quantus")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    repository = ModelRepository(MODELS, device=torch.device("cpu"))
    repository.load_all()
    return repository.get("shapes", "")


@pytest.fixture(scope="module")
def data(model):
    repository = ModelRepository(MODELS, device=torch.device("cpu"))
    repository.load_all()
    return repository.dataset("shapes", "shapes-val", max_pixels=10**8).head(6)


def call(model) -> CallContext:
    return CallContext(model, CancellationToken(), AttributionSettings(), compute=SCHEDULED)


def random_maps(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_deletion_curve_matches_quantus_pixel_flipping(model, data) -> None:
    # Quantus steps through channel values (features_in_step must divide H·W); on 48 × 48 crops (the CNN
    # pools globally) 3 · 96 features are exactly 96 whole pixels per step, 24 steps.
    images, maps = data.images[:3, :, 8:56, 8:56].contiguous(), random_maps(3)[:, :48, :48]
    net = copy.deepcopy(model.module.net)  # a plain torch model: the served one may run its forward on ONNX
    model = TorchModel(
        model.name, model.version, model.config, model.weights_digest, net, torch.device("cpu")
    )
    targets = model.logits(images).argmax(dim=1)
    grey = torch.full_like(images, 0.5)
    ours = curves.perturbation_curve(call(model), images, grey, maps, targets, 24, insertion=False)
    metric = quantus.PixelFlipping(
        features_in_step=3 * 96, perturb_baseline=0.5, disable_warnings=True, display_progressbar=False
    )
    theirs = metric(
        model=model.differentiable(),
        x_batch=images.numpy(),
        y_batch=targets.numpy(),
        a_batch=maps.unsqueeze(1).expand(-1, 3, -1, -1).numpy(),  # equal channels: whole pixels per step
        device="cpu",
        softmax=True,
    )
    assert ours.y.shape == (3, 25)
    np.testing.assert_allclose(ours.y[:, 1:].numpy(), np.asarray(theirs), atol=1e-5)
    original = model.logits(images).softmax(dim=1).gather(1, targets.view(-1, 1)).squeeze(1)
    np.testing.assert_allclose(ours.y[:, 0].numpy(), original.numpy(), atol=1e-6)


def test_insertion_starts_at_the_baseline_and_ends_at_the_image(model, data) -> None:
    images, maps = data.images[:2], random_maps(2)
    targets = model.logits(images).argmax(dim=1)
    blurred = curves.baseline_images(images, PerturbationBaseline.BLUR, 5.0)
    result = curves.perturbation_curve(call(model), images, blurred, maps, targets, 4, insertion=True)
    at = model.logits(torch.cat([blurred, images])).softmax(dim=1)
    np.testing.assert_allclose(
        result.y[:, 0].numpy(), at[:2].gather(1, targets.view(-1, 1)).squeeze(1), atol=1e-6
    )
    np.testing.assert_allclose(
        result.y[:, -1].numpy(), at[2:].gather(1, targets.view(-1, 1)).squeeze(1), atol=1e-6
    )
    assert result.auc == pytest.approx(float(np.trapezoid(result.y.mean(0).numpy(), result.x.numpy())))
    mean = curves.baseline_images(images, PerturbationBaseline.MEAN, 5.0)
    np.testing.assert_allclose(mean[:, :, 10, 20].numpy(), images.mean(dim=(2, 3)).numpy(), atol=1e-6)


def test_road_imputation_matches_quantus_noisy_linear_imputation(data) -> None:
    image = data.images[0]
    removed = random_maps(1, seed=3)[0] > 0.6
    ours = road.linear_imputation(image.double(), removed)
    indices = np.flatnonzero(removed.numpy().ravel())
    theirs = noisy_linear_imputation(image.double().numpy(), indices, noise=0.0)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-9)
    assert torch.equal(ours[:, ~removed], image.double()[:, ~removed])


def test_road_curve_is_the_accuracy_after_imputing_the_top_pixels(model, data) -> None:
    images, maps = data.images[:3], random_maps(3, seed=4)
    targets = model.logits(images).argmax(dim=1)
    fractions = (0.25, 0.75)
    ours = road.road_curve(
        call(model), images, maps, targets, fractions, 0.01, torch.Generator().manual_seed(9)
    )
    generator = torch.Generator().manual_seed(9)  # the paper's procedure, drawn in the same order
    expected = np.zeros((3, 2))
    for i in range(3):
        for k, fraction in enumerate(fractions):
            top = np.argsort(-maps[i].numpy().ravel(), kind="stable")[: int(4096 * fraction)]
            removed = np.zeros(4096, dtype=bool)
            removed[top] = True
            removed_t = torch.from_numpy(removed.reshape(64, 64))
            imputed = torch.from_numpy(
                noisy_linear_imputation(images[i].double().numpy(), np.flatnonzero(removed), noise=0.0)
            ).float()
            noisy = imputed + torch.randn(imputed.shape, generator=generator) * 0.01
            perturbed = torch.where(removed_t, noisy.clamp(0, 1), images[i])
            expected[i, k] = float(model.logits(perturbed[None]).argmax() == targets[i])
    np.testing.assert_array_equal(ours.y.numpy(), expected)


def test_pointing_game_and_relevance_mass_match_quantus(model, data) -> None:
    maps, masks = random_maps(6, seed=5), data.masks
    maps[0][masks[0]] += 1.0  # one map that surely hits
    pointing = quantus.PointingGame(disable_warnings=True, display_progressbar=False)
    mass = quantus.RelevanceMassAccuracy(disable_warnings=True, display_progressbar=False)
    inputs = {
        "model": model.differentiable(),
        "x_batch": data.images.numpy(),
        "y_batch": data.labels.numpy(),
        "a_batch": maps.unsqueeze(1).numpy(),
        "s_batch": masks.unsqueeze(1).numpy().astype(float),
        "device": "cpu",
    }
    np.testing.assert_array_equal(
        localisation.pointing_hits(maps, masks).numpy(), np.asarray(pointing(**inputs))
    )
    np.testing.assert_allclose(localisation.relevance_mass(maps, masks).numpy(), mass(**inputs), rtol=1e-5)
    signed = maps - 0.5  # only positive relevance counts
    expected = (signed.clamp(min=0) * masks).sum(dim=(1, 2)) / signed.clamp(min=0).sum(dim=(1, 2))
    np.testing.assert_allclose(
        localisation.relevance_mass(signed, masks).numpy(), expected.numpy(), rtol=1e-5
    )


def test_pointing_tolerance_grows_the_region() -> None:
    maps = torch.zeros(1, 16, 16)
    maps[0, 3, 3] = 1.0
    region = torch.zeros(1, 16, 16, dtype=torch.bool)
    region[0, 6:9, 6:9] = True
    assert [bool(localisation.pointing_hits(maps, region, t)) for t in (2, 3)] == [False, True]
    assert localisation.paper_tolerance(224, 224) == 15 and localisation.paper_tolerance(64, 64) == 4


def test_sparseness_matches_quantus(model, data) -> None:
    maps = random_maps(4, seed=6) ** 4 - 0.1
    metric = quantus.Sparseness(disable_warnings=True, display_progressbar=False, normalise=False)
    theirs = metric(
        model=model.differentiable(),
        x_batch=data.images[:4].numpy(),
        y_batch=data.labels[:4].numpy(),
        a_batch=maps.abs().unsqueeze(1).numpy(),
        device="cpu",
    )
    np.testing.assert_allclose(complexity.gini(maps).numpy(), theirs, rtol=1e-5)
    one_hot = torch.zeros(1, 8, 8)
    one_hot[0, 2, 2] = 5.0
    assert complexity.gini(torch.ones(1, 8, 8)).item() == pytest.approx(0.0, abs=1e-6)
    assert complexity.gini(one_hot).item() == pytest.approx(1 - 1 / 64, abs=1e-5)


def test_max_sensitivity_is_the_papers_monte_carlo_maximum(data) -> None:
    images = data.images[:3]
    weights = torch.linspace(-1, 1, 64 * 64).view(64, 64)

    def explain(pixels: torch.Tensor) -> torch.Tensor:  # a smooth, non-linear explanation
        return (pixels.sum(dim=1) ** 2) * weights

    ours = sensitivity.max_sensitivity(
        images, explain(images), explain, 5, 0.05, torch.Generator().manual_seed(2)
    )
    generator = torch.Generator().manual_seed(2)
    expected = torch.zeros(3, dtype=torch.float64)
    base = explain(images).double()
    for _ in range(5):
        delta = torch.rand(images.shape, generator=generator) * 0.1 - 0.05
        changed = explain((images + delta).clamp(0, 1)).double()
        ratio = torch.linalg.matrix_norm(changed - base) / torch.linalg.matrix_norm(base)
        expected = torch.maximum(expected, ratio)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5)
    assert bool((ours > 0).all())


def test_similarities_match_quantus() -> None:
    a, b = random_maps(2, seed=7)
    b = a + 0.5 * b
    a[0, 0], b[0, 0] = 0.0, 0.0  # both scaled maps then span [0, 1], Quantus's data range
    assert randomisation.spearman(a[None], b[None]).item() == pytest.approx(
        correlation_spearman(a.abs().numpy().ravel(), b.abs().numpy().ravel()), abs=1e-6
    )
    expected = quantus_ssim((a / a.max()).double().numpy(), (b / b.max()).double().numpy())
    assert randomisation.ssim(a[None], b[None]).item() == pytest.approx(expected, abs=1e-5)
    assert randomisation.spearman(torch.zeros(1, 4, 4), a[None, :4, :4]).item() == 0.0


def test_randomisation_goes_top_down_on_a_copy(model) -> None:
    trained = {k: v.clone() for k, v in model.module.net.state_dict().items()}
    layers = randomisation.parameterised_layers(model.module.net)
    assert layers[0] == "classifier.2" and layers[-1] == "features.0" and len(layers) == 9

    def changed(net) -> set[str]:
        state = net.state_dict()
        return {name.rsplit(".", 1)[0] for name, v in trained.items() if not torch.equal(state[name], v)}

    generator = torch.Generator().manual_seed(0)
    for k, (layer, randomised) in enumerate(
        randomisation.randomised_models(model, generator, cascading=True)
    ):
        assert layer == layers[k] and changed(randomised.module.net) == set(layers[: k + 1])
    for k, (layer, randomised) in enumerate(
        randomisation.randomised_models(model, generator, cascading=False)
    ):
        assert layer == layers[k] and changed(randomised.module.net) == {layer}
        if k == 0:
            probe = torch.rand(2, 3, 64, 64, generator=generator)
            assert not torch.allclose(randomised.logits(probe), model.logits(probe))
    assert changed(model.module.net) == set()
