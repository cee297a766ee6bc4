"""Looking inside a network: its filters, a layer's response to an image, embeddings, and three dataset
jobs (embedding maps, top-activating examples, activation atlases).

Core modules take tensors and a `TorchModel`; layer outputs are read with the per-call
`common.capture.LayerCapture` hooks, so inspection never disturbs concurrent calls on the shared model.
Nothing here knows about protos: `wire.inspection` and `wire.kinds.inspection` translate
inspection.proto to and from these core types.
"""
