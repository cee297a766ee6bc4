"""The model repository: folders `models/<name>/<version>/model.toml`, parsed and loaded (like Triton's)."""
