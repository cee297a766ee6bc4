"""The fastest engine for a torch model's no-grad forward pass, chosen once at load time.

Forward-only work (Predict, occlusion, LIME, KernelSHAP, Score-CAM's masked passes) needs no autograd,
so it may run wherever it runs fastest, as long as the logits are the same. At load, `TunedTorchModel`
times the candidates on one batch of random pixels and keeps the fastest whose logits agree with eager
torch within `TOLERANCE`:

* eager torch on contiguous (NCHW) input, the reference;
* torch on channels_last input (oneDNN/cuDNN convolutions often prefer NHWC);
* ONNX Runtime on the same module exported in memory (normalisation included), on the CPU provider or the
  CUDA provider when the model is on a GPU.

The choice is reproducible: engines are ranked by a fixed preference (eager torch, channels_last torch,
ONNX Runtime), and a later one is kept only when it is faster than every earlier one by more than
`MARGIN`. A near tie (resnet34 on two cores: 98 against 105 ms per image) therefore always goes to the
preferred engine instead of to whichever won the timing on that start. `[explain] forward_engine` names
an engine outright; such a model fails to load when that engine cannot run it or disagrees with eager
torch. In exact mode (`[explain] mode = "exact"`) nothing is timed: every pass is eager torch.

Methods whose maps amplify logit differences (Score-CAM: a softmax over the channels' scores turns an
absolute logit difference d into a relative weight change of about d) use `amplifying_logits`: the
chosen engine only when its measured difference from eager torch is under `AMPLIFIED_TOLERANCE` (10×
tighter than `TOLERANCE`), else eager torch.

Gradient methods keep using `differentiable()`, the torch module itself. With `forward_engine = "auto"`,
export or session failures are logged and leave the torch engines.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from glassbox.backends.onnx_backend import providers, session_options
from glassbox.backends.torch_backend import TorchModel
from glassbox.core.model_config import ExplainMode, ModelConfig

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
"""Largest accepted |logit difference| to eager torch, relative to max(1, largest |logit|)."""
AMPLIFIED_TOLERANCE = 1e-5
"""`TOLERANCE` for the engine that serves `amplifying_logits`: 10× tighter, still above float32's own rounding
(eager torch differs from float64 by ~2e-6 of the largest logit on a calibrated mobilenet_v3_small, as
ONNX Runtime differs from eager torch), so an engine that only rounds differently keeps serving Score-CAM
and one that deviates more than float32 does not."""
PREFERENCE = ("torch", "torch-channels_last", "onnxruntime")
"""The order in which engines are preferred when their times are within `MARGIN`: the reference first."""
MARGIN = 0.2
"""A less preferred engine is chosen only when it takes under 1/(1 + MARGIN) of a preferred one's time."""
PROBE_ROWS = 8
"""Images in the timed batch: a typical perturbation batch, small enough to keep loading quick."""
TIMING_ROUNDS = 3
"""Timed runs of each engine, interleaved; the best counts."""
MAX_ONNX_PARAMETER_BYTES = 1 << 30
"""An ONNX Runtime session holds a second copy of the weights; above this size it is not worth it."""

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EngineTiming:
    """One candidate's measurement: seconds per image on the probe batch, and its deviation from eager."""

    engine: str
    seconds_per_image: float
    max_abs_difference: float


@dataclass(frozen=True)
class ForwardSelection:
    """The engine kept for no-grad forward passes and what every candidate measured."""

    engine: str
    forward: Forward
    timings: tuple[EngineTiming, ...]
    amplifying_engine: str = "torch"
    amplifying_forward: Forward | None = None


class TunedTorchModel(TorchModel):
    """A TorchModel whose no-grad forward (`logits`) runs on the engine measured fastest at load."""

    def __init__(
        self,
        name: str,
        version: str,
        config: ModelConfig,
        weights_digest: str,
        net: nn.Module,
        device: torch.device,
        *,
        onnx_threads: int = 0,
    ) -> None:
        super().__init__(name, version, config, weights_digest, net, device)
        if config.mode is ExplainMode.EXACT:
            eager = super().logits
            self.forward_selection = ForwardSelection("torch", eager, (), "torch", eager)
            log.info("model %s version %s: exact mode, every pass on eager torch", name, version)
            return
        self.forward_selection = select_forward(self.module, config, device, onnx_threads=onnx_threads)
        timings = self.forward_selection.timings
        measured = ", ".join(f"{t.engine} {t.seconds_per_image * 1e3:.2f} ms/image" for t in timings)
        engine = self.forward_selection.engine
        log.info(
            "model %s version %s: no-grad forward on %s, amplifying methods on %s (%s)",
            name,
            version,
            engine,
            self.forward_selection.amplifying_engine,
            measured,
        )

    @property
    def forward_engine(self) -> str:
        return self.forward_selection.engine

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_selection.forward(pixels)

    def amplifying_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        forward = self.forward_selection.amplifying_forward
        return forward(pixels) if forward is not None else super().logits(pixels)


def select_forward(
    module: nn.Module, config: ModelConfig, device: torch.device, *, onnx_threads: int = 0
) -> ForwardSelection:
    """Time every candidate engine on one probe batch (interleaved rounds, best of each); keep the
    preferred one among those that agree with eager torch and are within `MARGIN` of the fastest (or the
    configured engine, which must agree)."""
    generator = torch.Generator().manual_seed(0)
    probe = torch.rand(PROBE_ROWS, 3, config.input.height, config.input.width, generator=generator)
    configured = config.forward_engine
    candidates: dict[str, Forward] = {"torch": _torch_forward(module, device, channels_last=False)}
    if configured in ("auto", "torch-channels_last"):
        candidates["torch-channels_last"] = _torch_forward(module, device, channels_last=True)
    if configured in ("auto", "onnxruntime"):
        onnx_forward = _onnx_forward(module, probe, device, onnx_threads)
        if onnx_forward is not None:
            candidates["onnxruntime"] = onnx_forward
    reference = candidates["torch"](probe)
    scale = max(1.0, float(reference.abs().max()))
    differences: dict[str, float] = {}
    for engine, forward in candidates.items():
        try:
            logits = forward(probe)  # also the warm-up: lazy allocations, thread pools
        except Exception:  # an engine that cannot run this model is simply not a candidate
            log.warning("forward engine %s failed on the probe batch", engine, exc_info=True)
            continue
        differences[engine] = float((logits - reference).abs().max())
        if differences[engine] > TOLERANCE * scale:
            log.warning(
                "forward engine %s differs from eager torch by %.3g; not used", engine, differences[engine]
            )
    seconds = _interleaved_best_seconds({engine: candidates[engine] for engine in differences}, probe)
    timings = tuple(EngineTiming(e, seconds[e] / PROBE_ROWS, d) for e, d in differences.items())
    usable = [t for t in timings if t.max_abs_difference <= TOLERANCE * scale]
    if configured == "auto":
        engine = preferred_engine(usable)
    elif any(t.engine == configured for t in usable):
        engine = configured
    else:
        raise ValueError(
            f"explain.forward_engine = {configured!r} cannot serve this model: it failed to run or its "
            f"logits differ from eager torch by more than {TOLERANCE} relative (see the log)"
        )
    amplifying = engine if differences[engine] <= AMPLIFIED_TOLERANCE * scale else "torch"
    return ForwardSelection(engine, candidates[engine], timings, amplifying, candidates[amplifying])


def preferred_engine(usable: list[EngineTiming]) -> str:
    """The engine to keep among those that agree: in `PREFERENCE` order, each engine displaces the one kept
    so far only when it is faster by more than `MARGIN`, so that a near tie always ends the same way."""
    ranked = sorted(usable, key=lambda t: PREFERENCE.index(t.engine))
    kept = ranked[0]
    for timing in ranked[1:]:
        if timing.seconds_per_image * (1 + MARGIN) < kept.seconds_per_image:
            kept = timing
    return kept.engine


def _torch_forward(module: nn.Module, device: torch.device, *, channels_last: bool) -> Forward:
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @torch.inference_mode()
    def forward(pixels: torch.Tensor) -> torch.Tensor:
        batch = pixels.to(device, torch.float32).contiguous(memory_format=memory_format)
        return module(batch).float().cpu()

    return forward


@contextlib.contextmanager
def _attention_fast_path_off() -> Iterator[None]:
    """Trace `nn.MultiheadAttention` through its exportable ops: its inference fast path is one fused
    `_native_multi_head_attention` that has no ONNX symbolic, so a transformer's export would fail (and
    torch's exporter prints the whole traced graph to stderr when it does). Export runs while the model
    repository loads, before any request is served, so flipping the process-wide flag is safe."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def _onnx_forward(
    module: nn.Module, probe: torch.Tensor, device: torch.device, threads: int
) -> Forward | None:
    """The module exported to ONNX in memory and opened in ONNX Runtime, or None when that fails."""
    parameter_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    if parameter_bytes > MAX_ONNX_PARAMETER_BYTES:
        return None
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), _attention_fast_path_off():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
            torch.onnx.export(
                module,
                (probe[:2].to(device),),
                buffer,  # type: ignore[arg-type]  # export writes to a file object too; the hint names paths only
                input_names=["pixels"],
                output_names=["logits"],
                dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        options = session_options(threads)
        # Idle ONNX Runtime threads would otherwise spin for a while after each run, taking the cores from
        # the torch work (gradient methods, hooked forwards) that shares them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            buffer.getvalue(), sess_options=options, providers=providers(device.type == "cuda")
        )
    except Exception:
        log.info("ONNX export of the model failed; its no-grad forward stays on torch", exc_info=True)
        return None

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy())
        (logits,) = session.run(["logits"], {"pixels": array})
        return torch.from_numpy(np.asarray(logits, dtype=np.float32))

    return forward


def _interleaved_best_seconds(engines: dict[str, Forward], probe: torch.Tensor) -> dict[str, float]:
    """Each engine's best time over TIMING_ROUNDS rounds that run every engine once in turn, so a load
    spike on a shared machine cannot make one engine look faster than it is for the model's lifetime."""
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(TIMING_ROUNDS):
        for engine, forward in engines.items():
            started = time.perf_counter()
            forward(probe)
            best[engine] = min(best[engine], time.perf_counter() - started)
    return best
