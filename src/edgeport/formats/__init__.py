"""Artifact formats: one module per format (export, int8, proof), named in :mod:`.registry`.

This package's ``__init__`` and ``registry`` are torch-free: the runtime reads
the registry to map formats to runner backends.
"""
