"""The runtime half of edgeport: load a bundle, run it on any backend.

Never imports torch at import time; only the torch backends do.
"""

from __future__ import annotations

from importlib import import_module

from ..specs import DEFAULT_MAX_BATCH
from .base import Prepared, Runner, default_threads
from .registry import available_backends, create_runner, list_devices

_LAZY = {
    "bench": "edgeport.runtime.benchmark:bench",
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'edgeport.runtime' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


__all__ = [
    "DEFAULT_MAX_BATCH",
    "Prepared",
    "Runner",
    "available_backends",
    "bench",
    "create_runner",
    "default_threads",
    "list_devices",
]
