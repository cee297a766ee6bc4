"""Glassbox: a gRPC microservice that explains image classifiers."""

__version__ = "0.1.0"
