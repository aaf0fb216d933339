"""Backend registry: name -> "module:Class", imported on first use.

``available_backends()`` feeds the CLI choices and test parametrization;
``list_devices()`` says, for every backend x device, whether it is usable here
and, where it is not, why.  Neither imports torch unless a torch backend is
being probed.
"""

from __future__ import annotations

import importlib
import importlib.util

from ..errors import BackendUnavailableError, ConfigError

BACKENDS: dict[str, str] = {
    "torch": "edgeport.runtime.torch_backend:TorchRunner",
    "torchscript": "edgeport.runtime.torchscript_backend:TorchScriptRunner",
    "onnxruntime": "edgeport.runtime.onnxruntime_backend:OnnxRuntimeRunner",
    "openvino": "edgeport.runtime.openvino_backend:OpenVinoRunner",
}

# Bundle artifact format each backend runs.
BACKEND_FORMAT = {
    "torch": "torch",
    "torchscript": "torchscript",
    "onnxruntime": "onnx",
    "openvino": "openvino",
}

# The Python package a backend needs, and the pip extra that installs it.
_REQUIREMENT = {
    "torch": ("torch", "pip install 'edgeport[export]' (installs torch)"),
    "torchscript": ("torch", "pip install 'edgeport[export]' (installs torch)"),
    "onnxruntime": ("onnxruntime", "pip install edgeport (installs onnxruntime)"),
    "openvino": ("openvino", "pip install 'edgeport[openvino]'"),
}


def _check_backend_name(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def backend_class(backend: str):
    """The runner class of ``backend``; :class:`BackendUnavailableError` if its package is missing."""
    _check_backend_name(backend)
    package, hint = _REQUIREMENT[backend]
    if importlib.util.find_spec(package) is None:
        raise BackendUnavailableError(f"backend {backend!r} needs the {package} package: {hint}")
    module, _, cls = BACKENDS[backend].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise BackendUnavailableError(f"backend {backend!r} cannot be imported ({exc}): {hint}") from None


def available_backends() -> list[str]:
    """Backends whose packages are installed (some of their devices may still be unusable)."""
    return [b for b, (pkg, _) in _REQUIREMENT.items() if importlib.util.find_spec(pkg) is not None]


def create_runner(bundle, backend: str, precision: str = "fp32", device: str = "cpu", **options):
    """A runner (not yet loaded) for ``bundle``'s ``backend`` artifact at ``precision`` on ``device``.

    Raises :class:`BackendUnavailableError` when the backend or device cannot be
    used here and :class:`BundleError` when the bundle has no such artifact;
    never falls back to another backend or device.
    """
    cls = backend_class(backend)
    device = str(device).lower()
    known = cls.known_devices()
    if device not in known:
        raise ConfigError(f"backend {backend!r} has no device {device!r}; choose from {', '.join(known)}")
    usable, reason = cls.device_status(device)
    if not usable:
        raise BackendUnavailableError(f"{backend} on {device} is unavailable: {reason}")
    return cls(bundle, precision=precision, device=device, **options)


def list_devices(backends: list[str] | None = None) -> list[dict]:
    """Rows ``{backend, device, usable, reason}`` for every backend x device.

    ``reason`` is ``""`` for a usable device, else what is missing and how to get it.
    """
    rows = []
    for backend in backends or list(BACKENDS):
        _check_backend_name(backend)
        try:
            cls = backend_class(backend)
        except BackendUnavailableError as exc:
            rows.append({"backend": backend, "device": "cpu", "usable": False, "reason": str(exc)})
            continue
        for device in cls.known_devices():
            usable, reason = cls.device_status(device)
            rows.append({"backend": backend, "device": device, "usable": usable, "reason": reason})
    return rows
