"""The generative job kinds (`KINDS`, registered by the composition root through `wire.kinds`).

Each kind is a `validate` (generative.proto spec → checked core request, within the server's
`jobs.limits.generative` and `limits.max_image_pixels`; runs before anything is queued), a `run`
(core request + job context → the core's result) and a `result` (core result → result message).
Fields left unset take the core dataclasses' defaults, so every default lives in one place. All random
draws come from a CPU generator seeded with the job's seed, so a job gives the same result on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from glassbox_client._generated.glassbox.v1 import generative_pb2 as pb
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from glassbox.backends.torch_backend import TorchModel
from glassbox.config import Settings
from glassbox.core.errors import GlassboxError, InvalidArgument
from glassbox.generative.adversarial import AdversarialImage, Adversary, attack
from glassbox.generative.class_visualisation import ClassModel, ClassVisualisation, visualise_class
from glassbox.generative.deepdream import DeepDream, Dream, dream
from glassbox.generative.feature_visualisation import FeatureVisualisation, RenderedImages, visualise
from glassbox.generative.image_prior import LatentPrior, find_prior, store_prior
from glassbox.generative.inversion import FeatureInversion, Inversion, invert
from glassbox.generative.maco import Accentuation, MacoImage, MacoVisualisation, visualise_maco
from glassbox.generative.optimise import StepSpan
from glassbox.generative.prior_training import PriorTraining, TrainedPrior, train_prior
from glassbox.generative.style_transfer import StyleTransfer, Stylised, transfer
from glassbox.jobs.kinds import JobContext, JobKind
from glassbox.models.repository import ModelRepository
from glassbox.wire import generative as convert
from glassbox.wire.fields import VersionedSpec, optional, set_fields
from glassbox.wire.jobs import proto_kind


def _generator(ctx: JobContext) -> torch.Generator:
    return ctx.generator(torch.device("cpu"))


def _size(spec: Message, model: TorchModel) -> dict[str, int]:
    return {
        "height": optional(spec, "height", model.config.input.height),
        "width": optional(spec, "width", model.config.input.width),
    }


def _priors(spec: VersionedSpec, repository: ModelRepository) -> Callable[[str], LatentPrior]:
    """Loads the spec's model version's learned prior of a named set (PARAMETRISATION_LATENT_PRIOR)."""

    def load(image_set: str) -> LatentPrior:
        return find_prior(
            repository, spec.model, spec.version, image_set, field="parametrisation.latent_prior"
        )

    return load


def validate_feature_visualisation(
    spec: pb.FeatureVisualisationSpec, repository: ModelRepository, settings: Settings
) -> FeatureVisualisation:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    if not spec.HasField("objective"):
        raise InvalidArgument("an objective is required", field="objective")
    return FeatureVisualisation(
        model=model,
        limits=limits,
        objective=convert.objective(spec.objective, model, max_depth=limits.max_objective_depth),
        parametrisation=convert.parametrisation(
            spec.parametrisation, FeatureVisualisation.parametrisation, prior=_priors(spec, repository)
        ),
        transforms=convert.transforms(spec.transforms, FeatureVisualisation.transforms),
        regularisers=convert.regularisers(
            spec.regularisers, spec.HasField("regularisers"), FeatureVisualisation.regularisers
        ),
        **_size(spec, model),
        **set_fields(spec, "batch", "steps", "learning_rate"),
    )


def run_feature_visualisation(job: FeatureVisualisation, ctx: JobContext) -> RenderedImages:
    return visualise(job, generator=_generator(ctx), progress=StepSpan(ctx, job.steps))


def feature_visualisation_result(
    _job: FeatureVisualisation, rendered: RenderedImages
) -> pb.FeatureVisualisationResult:
    return pb.FeatureVisualisationResult(
        images=[convert.generated_image(image) for image in rendered.images],
        initial_objective=rendered.initial_objective.tolist(),
        final_objective=rendered.final_objective.tolist(),
    )


def validate_class_visualisation(
    spec: pb.ClassVisualisationSpec, repository: ModelRepository, settings: Settings
) -> ClassVisualisation:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    return ClassVisualisation(
        model=model,
        limits=limits,
        class_index=convert.class_index(spec, "target", model),
        parametrisation=convert.parametrisation(
            spec.parametrisation, ClassVisualisation.parametrisation, prior=_priors(spec, repository)
        ),
        transforms=convert.transforms(spec.transforms, ClassVisualisation.transforms),
        **_size(spec, model),
        **set_fields(spec, "l2_weight", "steps", "learning_rate"),
    )


def run_class_visualisation(job: ClassVisualisation, ctx: JobContext) -> ClassModel:
    return visualise_class(job, generator=_generator(ctx), progress=StepSpan(ctx, job.steps))


def class_visualisation_result(job: ClassVisualisation, result: ClassModel) -> pb.ClassVisualisationResult:
    return pb.ClassVisualisationResult(
        image=convert.generated_image(result.image),
        class_index=job.class_index,
        label=job.model.labels[job.class_index],
        initial_logit=result.initial_logit,
        final_logit=result.final_logit,
        final_probability=result.final_probability,
    )


def validate_deepdream(spec: pb.DeepDreamSpec, repository: ModelRepository, settings: Settings) -> DeepDream:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    if not spec.HasField("objective"):
        raise InvalidArgument("an objective is required, e.g. a LayerObjective", field="objective")
    return DeepDream(
        model=model,
        limits=limits,
        image=convert.image(spec, "image", model, max_pixels=settings.limits.max_image_pixels),
        objective=convert.objective(spec.objective, model, max_depth=limits.max_objective_depth),
        **set_fields(spec, "octaves", "octave_scale", "steps_per_octave", "jitter", "learning_rate"),
    )


def run_deepdream(job: DeepDream, ctx: JobContext) -> Dream:
    return dream(job, generator=_generator(ctx), progress=StepSpan(ctx, job.octaves * job.steps_per_octave))


def deepdream_result(_job: DeepDream, result: Dream) -> pb.DeepDreamResult:
    return pb.DeepDreamResult(
        image=convert.generated_image(result.image),
        initial_objective=result.initial_objective,
        final_objective=result.final_objective,
    )


def validate_feature_inversion(
    spec: pb.FeatureInversionSpec, repository: ModelRepository, settings: Settings
) -> FeatureInversion:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    return FeatureInversion(
        model=model,
        limits=limits,
        image=convert.image(spec, "image", model, max_pixels=settings.limits.max_image_pixels),
        layer=spec.layer,
        parametrisation=convert.parametrisation(spec.parametrisation, FeatureInversion.parametrisation),
        regularisers=convert.regularisers(
            spec.regularisers, spec.HasField("regularisers"), FeatureInversion.regularisers
        ),
        **set_fields(spec, "steps", "learning_rate"),
    )


def run_feature_inversion(job: FeatureInversion, ctx: JobContext) -> Inversion:
    return invert(job, generator=_generator(ctx), progress=StepSpan(ctx, job.steps))


def feature_inversion_result(_job: FeatureInversion, result: Inversion) -> pb.FeatureInversionResult:
    return pb.FeatureInversionResult(
        image=convert.generated_image(result.image),
        initial_relative_error=result.initial_relative_error,
        final_relative_error=result.final_relative_error,
    )


def validate_style_transfer(
    spec: pb.StyleTransferSpec, repository: ModelRepository, settings: Settings
) -> StyleTransfer:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    if spec.init not in pb.StyleTransferInit.values():
        raise InvalidArgument(f"unknown init {spec.init}", field="init")
    return StyleTransfer(
        model=model,
        limits=limits,
        content=convert.image(spec, "content_image", model, max_pixels=settings.limits.max_image_pixels),
        style=convert.image(spec, "style_image", model, max_pixels=settings.limits.max_image_pixels),
        content_layer=spec.content_layer,
        style_layers=tuple(spec.style_layers),
        style_layer_weights=tuple(spec.style_layer_weights),
        init_from_content=spec.init != pb.STYLE_TRANSFER_INIT_NOISE,
        **set_fields(spec, "content_weight", "style_weight", "steps", "learning_rate"),
    )


def run_style_transfer(job: StyleTransfer, ctx: JobContext) -> Stylised:
    return transfer(job, generator=_generator(ctx), progress=StepSpan(ctx, job.steps))


def style_transfer_result(_job: StyleTransfer, result: Stylised) -> pb.StyleTransferResult:
    return pb.StyleTransferResult(
        image=convert.generated_image(result.image),
        initial_style_loss=result.initial_style_loss,
        final_style_loss=result.final_style_loss,
        initial_content_loss=result.initial_content_loss,
        final_content_loss=result.final_content_loss,
    )


def validate_adversarial_image(
    spec: pb.AdversarialImageSpec, repository: ModelRepository, settings: Settings
) -> AdversarialImage:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    return AdversarialImage(
        model=model,
        limits=limits,
        image=convert.image(spec, "image", model, max_pixels=settings.limits.max_image_pixels),
        target=convert.class_index(spec, "target", model),
        **set_fields(spec, "epsilon", "step_size", "steps", "random_start"),
    )


def run_adversarial_image(job: AdversarialImage, ctx: JobContext) -> Adversary:
    return attack(job, generator=_generator(ctx), progress=StepSpan(ctx, job.steps))


def adversarial_image_result(job: AdversarialImage, result: Adversary) -> pb.AdversarialImageResult:
    return pb.AdversarialImageResult(
        image=convert.generated_image(result.image),
        perturbation=convert.tensor(result.perturbation),
        original_prediction=convert.class_score(result.original_prediction, job.model),
        adversarial_prediction=convert.class_score(result.adversarial_prediction, job.model),
        target=convert.class_score(result.target, job.model),
        reached_target=result.reached_target,
        linf_norm=float(result.perturbation.abs().max()),
        l2_norm=float(result.perturbation.norm()),
    )


def validate_image_prior_training(
    spec: pb.ImagePriorTrainingSpec, repository: ModelRepository, settings: Settings
) -> PriorTraining:
    entry = repository.entry(spec.model, spec.version)
    repository.get(spec.model, entry.version)
    sets = repository.dataset_names(spec.model)
    if spec.image_set not in sets:
        what = f"no named set {spec.image_set[:128]!r}" if spec.image_set else "no image set named"
        raise InvalidArgument(f"{what}; model {spec.model!r} has {sets}", field="image_set")
    try:
        images = repository.dataset(
            spec.model, spec.image_set, entry.version, max_pixels=settings.limits.max_image_pixels
        )
    except GlassboxError as exc:
        exc.field = "image_set"
        raise
    return PriorTraining(
        images=images.images,
        model=spec.model,
        version=entry.version,
        image_set=spec.image_set,
        limits=settings.jobs.limits.generative,
        **set_fields(spec, "steps", "batch_size", "latent_size", "learning_rate", "kl_weight"),
    )


class StoredPrior(NamedTuple):
    """A trained prior and where it was stored, relative to the model repository's root."""

    trained: TrainedPrior
    path: str


def image_prior_training_spec(
    *, model: str, version: str, seed: int, image_set: str, **optional: Any
) -> pb.ImagePriorTrainingSpec:
    """The spec of an image_prior_training job (`glassbox prior train` builds one from its flags);
    `optional` sets the spec's optional fields by name."""
    return pb.ImagePriorTrainingSpec(model=model, version=version, seed=seed, image_set=image_set, **optional)


def image_prior_training_summary(result: pb.ImagePriorTrainingResult) -> dict[str, Any]:
    """The result as JSON-ready fields named as in the proto, without the reconstruction images."""
    summary = MessageToDict(result, preserving_proto_field_name=True)
    summary.pop("reconstructions", None)
    return summary


def run_image_prior_training(job: PriorTraining, ctx: JobContext) -> StoredPrior:
    trained = train_prior(job, seed=ctx.seed, device=ctx.device, progress=StepSpan(ctx, job.steps))
    path = store_prior(ctx.repository, trained.network, trained.info)
    return StoredPrior(trained, path.relative_to(ctx.repository.root).as_posix())


def image_prior_training_result(job: PriorTraining, stored: StoredPrior) -> pb.ImagePriorTrainingResult:
    trained = stored.trained
    return pb.ImagePriorTrainingResult(
        path=stored.path,
        version=job.version,
        images=trained.info.images,
        latent_size=trained.info.latent_size,
        parameters=trained.info.parameters,
        initial_reconstruction_rmse=trained.initial_reconstruction_rmse,
        final_reconstruction_rmse=trained.info.reconstruction_rmse,
        latent_radius=trained.info.latent_radius,
        reconstructions=convert.generated_image(trained.reconstructions),
    )


def validate_maco_visualisation(
    spec: pb.MacoVisualisationSpec, repository: ModelRepository, settings: Settings
) -> MacoVisualisation:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    if not spec.HasField("objective"):
        raise InvalidArgument("an objective is required", field="objective")
    size = optional(spec, "size", MacoVisualisation.default_size(model, limits))
    accentuation = None
    if spec.HasField("accentuation"):
        message = spec.accentuation
        accentuation = Accentuation(
            image=convert.image_at(
                message,
                "image",
                model,
                size,
                max_pixels=settings.limits.max_image_pixels,
                field="accentuation.image",
            ),
            **set_fields(message, "penalty", "decay_power"),
        )
    return MacoVisualisation(
        model=model,
        limits=limits,
        objective=convert.objective(spec.objective, model, max_depth=limits.max_objective_depth),
        size=size,
        accentuation=accentuation,
        **set_fields(
            spec, "steps", "learning_rate", "crops", "crop_size_min", "crop_size_max", "noise", "decay_power"
        ),
    )


def run_maco_visualisation(job: MacoVisualisation, ctx: JobContext) -> MacoImage:
    return visualise_maco(job, generator=_generator(ctx), progress=StepSpan(ctx, job.steps))


def maco_visualisation_result(_job: MacoVisualisation, result: MacoImage) -> pb.MacoVisualisationResult:
    return pb.MacoVisualisationResult(
        image=convert.generated_image(result.image),
        transparency=convert.tensor(result.transparency),
        objective_curve=result.curve,
        initial_objective=result.initial_objective,
        final_objective=result.final_objective,
    )


KINDS: tuple[JobKind[Any, Any], ...] = (
    proto_kind(
        "feature_visualisation",
        pb.FeatureVisualisationSpec,
        validate_feature_visualisation,
        run_feature_visualisation,
        feature_visualisation_result,
    ),
    proto_kind(
        "class_visualisation",
        pb.ClassVisualisationSpec,
        validate_class_visualisation,
        run_class_visualisation,
        class_visualisation_result,
    ),
    proto_kind("deepdream", pb.DeepDreamSpec, validate_deepdream, run_deepdream, deepdream_result),
    proto_kind(
        "feature_inversion",
        pb.FeatureInversionSpec,
        validate_feature_inversion,
        run_feature_inversion,
        feature_inversion_result,
    ),
    proto_kind(
        "style_transfer",
        pb.StyleTransferSpec,
        validate_style_transfer,
        run_style_transfer,
        style_transfer_result,
    ),
    proto_kind(
        "adversarial_image",
        pb.AdversarialImageSpec,
        validate_adversarial_image,
        run_adversarial_image,
        adversarial_image_result,
    ),
    proto_kind(
        "maco_visualisation",
        pb.MacoVisualisationSpec,
        validate_maco_visualisation,
        run_maco_visualisation,
        maco_visualisation_result,
    ),
    proto_kind(
        "image_prior_training",
        pb.ImagePriorTrainingSpec,
        validate_image_prior_training,
        run_image_prior_training,
        image_prior_training_result,
    ),
)
