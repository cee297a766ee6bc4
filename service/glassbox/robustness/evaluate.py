"""Run a robustness evaluation: clean accuracy, every attack at every ε, the corruptions, the minimal-ε
search, and the report with its warnings and examples.

Only the images the model classifies correctly are attacked (RobustBench does the same): a misclassified
image is not robust at any ε, whatever an attack would do to it. Robust accuracy is over all images;
the attack success rate is over the correctly classified ones the attack ran on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from glassbox.common.pgd import AttackRun
from glassbox.common.threat import StartSampler, norms
from glassbox.core.call import CallContext
from glassbox.methods.batching import batch_ranges, inference_bytes_per_row
from glassbox.robustness.corruptions import corrupt
from glassbox.robustness.gradient_attacks import gradient_attack
from glassbox.robustness.minimal_epsilon import minimal_epsilons
from glassbox.robustness.report import (
    AttackAccuracy,
    CorruptionAccuracy,
    Example,
    MinimalEpsilons,
    RobustnessReport,
)
from glassbox.robustness.spec import AttackSpec, Goal, RobustnessEvaluation
from glassbox.robustness.square import square_attack

Progress = Callable[[int, int, str], None]
"""(step, total, message): called after each unit of work; may raise Cancelled."""


@dataclass
class _Outcome:
    """One attack at one ε: per image whether it is still classified correctly (all N images)."""

    attack: int
    epsilon: float
    correct: torch.Tensor
    summary: AttackAccuracy
    fooled: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)


class AttackRunner:
    """Runs one attack of the spec on any subset of the images at per-image radii."""

    def __init__(
        self, job: RobustnessEvaluation, call: CallContext, index: int, seed: int, clean: torch.Tensor
    ):
        self.job, self.call, self.index = job, call, index
        self.spec: AttackSpec = job.attacks[index]
        self.seed = seed
        shape = tuple(job.data.images.shape[1:])
        self.starts = StartSampler(hash((seed, index)), self.spec.method.norm, shape)
        labels = job.labels
        if self.spec.goal is Goal.TARGET_CLASS:
            assert self.spec.target_class is not None
            self.targets: torch.Tensor | None = torch.full_like(labels, self.spec.target_class)
        elif self.spec.goal is Goal.LEAST_LIKELY:
            self.targets = clean.argmin(dim=1)
        else:
            self.targets = None
        self.eligible = (
            torch.ones_like(labels, dtype=torch.bool) if self.targets is None else self.targets != labels
        )

    def run(self, indices: torch.Tensor, epsilon: torch.Tensor) -> AttackRun:
        images, labels = self.job.data.images[indices], self.job.labels[indices]
        targets = None if self.targets is None else self.targets[indices]
        if self.spec.method.white_box:
            return gradient_attack(
                self.job.model,
                self.call,
                self.spec.gradient(),
                images,
                labels,
                epsilon,
                targets=targets,
                starts=self.starts,
                indices=indices,
            )
        generator = torch.Generator().manual_seed(
            hash((self.seed, self.index, "square")) & 0x7FFF_FFFF_FFFF_FFFF
        )
        return square_attack(
            self.call, self.spec.square(), images, labels, epsilon, generator=generator, targets=targets
        )

    def fools_at(self, indices: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
        fooled = torch.zeros(len(indices), dtype=torch.bool)
        attackable = self.eligible[indices]
        if bool(attackable.any()):
            fooled[attackable] = self.run(indices[attackable], epsilon[attackable]).fooled
        return fooled


def evaluate(
    job: RobustnessEvaluation, call: CallContext, *, seed: int, progress: Progress
) -> RobustnessReport:
    started = time.perf_counter()
    data, labels, total = job.data.images, job.labels, len(job.data)
    rows = call.rows_per_batch(inference_bytes_per_row(job.model))
    clean = torch.cat([call.forward(data[a:b]) for a, b in batch_ranges(total, rows)])
    correct = clean.argmax(dim=1) == labels
    names = job.attack_names()
    search = job.minimal_epsilon
    steps = sum(len(a.epsilons) for a in job.attacks) + sum(len(s) for _, s in job.corruptions)
    steps += 0 if search is None else search.iterations + 1
    done = 0

    def advance(message: str) -> None:
        nonlocal done
        done += 1
        progress(done, steps, message)

    runners = [AttackRunner(job, call, i, seed, clean) for i in range(len(job.attacks))]
    outcomes: list[_Outcome] = []
    for runner, name in zip(runners, names, strict=True):
        for epsilon in runner.spec.epsilons:
            outcomes.append(_attack_once(runner, name, epsilon, correct, want_examples=job.examples > 0))
            advance(f"{name} at eps={epsilon:.4g}")
    corruption_results = []
    generator = torch.Generator().manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
    for corruption, severities in job.corruptions:
        for severity in severities:
            corrupted = corrupt(data, corruption, severity, generator=generator)
            logits = torch.cat([call.forward(corrupted[a:b]) for a, b in batch_ranges(total, rows)])
            accuracy = float((logits.argmax(dim=1) == labels).float().mean())
            corruption_results.append(CorruptionAccuracy(corruption.value, severity, accuracy))
            advance(f"{corruption.value} severity {severity}")
    minimal = None
    if search is not None:
        runner = runners[search.attack_index]
        per_image = minimal_epsilons(
            runner.fools_at,
            correct,
            search.max_epsilon,
            search.iterations,
            after_round=lambda: advance(f"minimal eps search with {names[search.attack_index]}"),
        )
        minimal = MinimalEpsilons(names[search.attack_index], search.max_epsilon, tuple(per_image.tolist()))
    return RobustnessReport(
        model=job.model.name,
        version=job.model.version,
        dataset=job.set_name,
        images=total,
        clean_accuracy=float(correct.float().mean()),
        attacks=tuple(o.summary for o in outcomes),
        worst_case=tuple(_worst_cases(job, outcomes)),
        corruptions=tuple(corruption_results),
        minimal_epsilon=minimal,
        forward_passes=call.counter.forward,
        backward_passes=call.counter.backward,
        wall_seconds=time.perf_counter() - started,
        warnings=tuple(_gradient_masking_warnings(job, outcomes)),
        examples=tuple(_examples(job, outcomes, clean)),
    )


def _attack_once(
    runner: AttackRunner, name: str, epsilon: float, correct: torch.Tensor, *, want_examples: bool
) -> _Outcome:
    labels = runner.job.labels
    attacked = (correct & runner.eligible).nonzero().flatten()
    after = correct.clone()
    success, linf, l2 = 0, 0.0, 0.0
    fooled_examples: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    if epsilon > 0 and len(attacked):
        result = runner.run(attacked, torch.full((len(attacked),), epsilon))
        after[attacked] = result.logits.argmax(dim=1) == labels[attacked]
        success = int(result.fooled.sum())
        delta_linf, delta_l2 = norms(result.adversarial - runner.job.data.images[attacked])
        linf, l2 = float(delta_linf.mean()), float(delta_l2.mean())
        if want_examples:
            for row in result.fooled.nonzero().flatten()[: runner.job.examples].tolist():
                fooled_examples.append((int(attacked[row]), result.adversarial[row], result.logits[row]))
    summary = AttackAccuracy(
        attack=name,
        threat_model=runner.spec.method.norm.value,
        epsilon=epsilon,
        robust_accuracy=float(after.float().mean()),
        attack_success_rate=success / len(attacked) if len(attacked) else 0.0,
        mean_linf=linf,
        mean_l2=l2,
        images=int(runner.eligible.sum()),
    )
    return _Outcome(runner.index, epsilon, after, summary, fooled_examples)


def _worst_cases(job: RobustnessEvaluation, outcomes: list[_Outcome]) -> list[AttackAccuracy]:
    """Per (threat model, ε) that more than one attack ran at: an image is robust only if it survived all."""
    groups: dict[tuple[str, float], list[_Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.summary.threat_model, outcome.epsilon), []).append(outcome)
    worst = []
    for (threat, epsilon), members in groups.items():
        if len(members) < 2:
            continue
        survived = torch.stack([m.correct for m in members]).all(dim=0)
        worst.append(
            AttackAccuracy(
                attack="worst_case",
                threat_model=threat,
                epsilon=epsilon,
                robust_accuracy=float(survived.float().mean()),
                attack_success_rate=0.0,
                mean_linf=0.0,
                mean_l2=0.0,
                images=len(survived),
            )
        )
    return worst


def _gradient_masking_warnings(job: RobustnessEvaluation, outcomes: list[_Outcome]) -> list[str]:
    """A black-box attack that beats every white-box attack at the same L∞ radius suggests that the
    gradients mislead the white-box attacks (gradient masking, Athalye et al. 2018)."""
    warnings = []
    for black in (o for o in outcomes if not job.attacks[o.attack].method.white_box):
        white = [
            o
            for o in outcomes
            if job.attacks[o.attack].method.white_box
            and o.summary.threat_model == black.summary.threat_model
            and o.epsilon == black.epsilon
        ]
        if white and black.summary.robust_accuracy < min(o.summary.robust_accuracy for o in white):
            best = min(white, key=lambda o: o.summary.robust_accuracy)
            warnings.append(
                f"the black-box {black.summary.attack} beat every white-box attack "
                f"at eps={black.epsilon:.4g} "
                f"(robust accuracy {black.summary.robust_accuracy:.3f} against {best.summary.attack}'s "
                f"{best.summary.robust_accuracy:.3f}): the gradients may be masked, so the white-box numbers "
                "overstate the robustness"
            )
    return warnings


def _examples(job: RobustnessEvaluation, outcomes: list[_Outcome], clean: torch.Tensor) -> list[Example]:
    """Up to `job.examples` images, each at the first attack and smallest ε that fooled it."""
    names = job.attack_names()
    chosen: dict[int, Example] = {}
    for outcome in sorted(outcomes, key=lambda o: (o.attack, o.epsilon)):
        for image, adversarial, logits in outcome.fooled:
            if len(chosen) < job.examples and image not in chosen:
                chosen[image] = Example(
                    image=image,
                    attack=names[outcome.attack],
                    epsilon=outcome.epsilon,
                    label=int(job.labels[image]),
                    original=job.data.images[image],
                    adversarial=adversarial,
                    original_logits=clean[image],
                    adversarial_logits=logits,
                )
    return list(chosen.values())
