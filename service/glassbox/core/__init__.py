"""Domain types, errors and the pixel contract. Nothing here knows about gRPC."""
