"""The gRPC transport: thin servicers, interceptors, error → status mapping and app wiring."""
