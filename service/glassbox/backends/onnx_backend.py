"""The onnxruntime backend: forward only. CUDA provider when a GPU is present, CPU provider otherwise."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from glassbox.backends.base import LayerInfo, Model
from glassbox.models.config import ModelConfig


def session_options(threads: int) -> ort.SessionOptions:
    """Sequential execution, full graph optimisation, `threads` intra-op threads (0 = default)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


def providers(use_cuda: bool) -> list[str]:
    """CUDA first when asked for and available, CPU always as the fallback."""
    available = ort.get_available_providers()
    chosen = ["CUDAExecutionProvider"] if use_cuda and "CUDAExecutionProvider" in available else []
    return [*chosen, "CPUExecutionProvider"]


class OnnxModel(Model):
    """An ONNX graph taking normalised NCHW float32 input and returning logits."""

    backend_name = "onnxruntime"
    supports_gradients = False

    def __init__(
        self,
        name: str,
        version: str,
        config: ModelConfig,
        weights_digest: str,
        model_bytes: bytes,
        *,
        use_cuda: bool,
        threads: int = 0,
    ) -> None:
        super().__init__(name, version, config, weights_digest)
        self.session = ort.InferenceSession(
            model_bytes, sess_options=session_options(threads), providers=providers(use_cuda)
        )
        self._input_name = self.session.get_inputs()[0].name
        self._output_name = self.session.get_outputs()[0].name
        self._mean = np.asarray(config.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(config.std, dtype=np.float32).reshape(1, 3, 1, 1)
        on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self._device = torch.device("cuda" if on_cuda else "cpu")

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def layers(self) -> list[LayerInfo]:
        return []

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        array = pixels.detach().to("cpu", torch.float32).numpy()
        normalised = (array - self._mean) / self._std
        (out,) = self.session.run(
            [self._output_name], {self._input_name: normalised.astype(np.float32, copy=False)}
        )
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
