"""Execution backends behind one interface: torch (forward + gradients) and onnxruntime (forward only)."""
