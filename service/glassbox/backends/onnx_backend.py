"""The onnxruntime backend: forward only. CUDA provider when a GPU is present, CPU provider otherwise.

Layers are the graph's intermediate tensors with a known [N, C, H, W] or [N, T, C] shape (ONNX shape
inference), named by their tensor name (`/features/features.14/Relu_output_0` for a torch export), so the
forward-only layer methods (Score-CAM) can read them. Reading one runs a second session that exposes
every such tensor as an output, built on first use (the model's bytes are kept until then, not a parsed
graph): the logits session keeps all its fusions.
"""

from __future__ import annotations

import threading

import numpy as np
import onnx
import onnxruntime as ort
import torch

from glassbox.backends.base import LayerInfo, Model
from glassbox.core.model_config import ModelConfig


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
    supports_layer_outputs = True

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
        self._layers, self._layer_values = _graph_layers(
            onnx.shape_inference.infer_shapes(onnx.load_from_string(model_bytes))
        )
        self._model_bytes: bytes | None = model_bytes  # until the layer session is built from it
        self._threads, self._use_cuda = threads, use_cuda
        self._layer_session: ort.InferenceSession | None = None
        self._layer_session_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def layers(self) -> list[LayerInfo]:
        return self._layers

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run([self._output_name], {self._input_name: self._normalised(pixels)})
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def logits_and_layer(self, pixels: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, classes] and the layer's output [B, ...] of one pass (CPU tensors)."""
        self.layer_info(layer)
        session = self._layer_outputs_session()
        logits, values = session.run([self._output_name, layer], {self._input_name: self._normalised(pixels)})
        return torch.from_numpy(np.asarray(logits, dtype=np.float32)), torch.from_numpy(np.asarray(values))

    def _normalised(self, pixels: torch.Tensor) -> np.ndarray:
        array = pixels.detach().to("cpu", torch.float32).numpy()
        return ((array - self._mean) / self._std).astype(np.float32, copy=False)

    def _layer_outputs_session(self) -> ort.InferenceSession:
        with self._layer_session_lock:
            if self._layer_session is None:
                assert self._model_bytes is not None
                graph = onnx.load_from_string(self._model_bytes)
                graph.graph.output.extend(self._layer_values)
                self._layer_session = ort.InferenceSession(
                    graph.SerializeToString(),
                    sess_options=session_options(self._threads),
                    providers=providers(self._use_cuda),
                )
                self._model_bytes = None
            return self._layer_session


def _graph_layers(graph: onnx.ModelProto) -> tuple[list[LayerInfo], list[onnx.ValueInfoProto]]:
    """The node outputs whose inferred shape is [batch, C, H, W] or [batch, T, C] with known C, H, W / T, C,
    in graph (topological) order, with their value infos."""
    values = {value.name: value for value in graph.graph.value_info}
    outputs = {value.name for value in graph.graph.output}
    layers, infos = [], []
    for node in graph.graph.node:
        for name in node.output:
            value = values.get(name)
            if value is None or name in outputs or value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                continue
            dims = value.type.tensor_type.shape.dim
            shape = tuple(d.dim_value for d in dims[1:])
            if len(dims) in (3, 4) and all(shape):
                layers.append(
                    LayerInfo(name=name, kind=node.op_type, output_shape=shape, cam_compatible=True)
                )
                infos.append(value)
    return layers, infos
