"""Looking inside a network: its filters, a layer's response to an image, embeddings, and three dataset
jobs (embedding maps, top-activating examples, activation atlases).

Core modules take tensors and a `TorchModel`; layer outputs are read with the per-call
`common.capture.LayerCapture` hooks, so inspection never disturbs concurrent calls on the shared model.
`kinds` and `convert` translate inspection.proto to and from these core types; nothing else here
knows about protos.
"""
