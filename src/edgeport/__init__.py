"""edgeport: take a PyTorch classifier from training to the edge.

The public API is imported lazily, so ``import edgeport`` (and the runtime
half, ``edgeport.runtime``) never imports torch.
"""

from __future__ import annotations

from importlib import import_module

from .errors import (  # noqa: F401  (re-exported)
    BackendUnavailableError,
    BundleError,
    ConfigError,
    DataError,
    EdgeportError,
    ExportError,
    InputError,
    OutputError,
    ParityError,
    RemoteError,
    WriteError,
)

__version__ = "0.2.0"

_LAZY = {
    "train": "edgeport.seed.train:train",
    "load_run": "edgeport.sources.models:load_run",
    "export": "edgeport.export.public:export",
    "quantize": "edgeport.results:quantize",
    "load_bundle": "edgeport.bundle:load_bundle",
    "verify": "edgeport.results:verify",
    "bench": "edgeport.results:bench",
    "selfcheck": "edgeport.device.selfcheck:selfcheck",
    # configs and data, for the calls above
    "TrainConfig": "edgeport.config:TrainConfig",
    "ExportConfig": "edgeport.config:ExportConfig",
    "CalibrationConfig": "edgeport.config:CalibrationConfig",
    "BenchConfig": "edgeport.config:BenchConfig",
    "Dataset": "edgeport.sources.feeds:Dataset",
    # typed results
    "VerifyResult": "edgeport.results:VerifyResult",
    "BenchResult": "edgeport.results:BenchResult",
    "QuantizeResult": "edgeport.results:QuantizeResult",
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'edgeport' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
