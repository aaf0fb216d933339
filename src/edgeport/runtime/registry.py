"""Backend registry: each format's runner, from :mod:`edgeport.format_registry`, imported on first use.

``available_backends()`` feeds the CLI choices and test parametrization;
``list_devices()`` says, for every backend x device, whether it is usable here
and, where it is not, why.  Neither imports torch unless a torch backend is
being probed.  Artifacts that can run code (TorchScript archives, pickled
models) load only from a bundle this process wrote, or with explicit trust.
"""

from __future__ import annotations

import importlib
import importlib.util

from ..errors import BackendUnavailableError, ConfigError
from ..format_registry import FORMATS, by_backend
from ..trust import TRUST_ENV, code_is_trusted
from ..trust import runs_code as model_runs_code

BACKENDS: dict[str, str] = {f.backend: f.runner for f in FORMATS.values()}
BACKEND_FORMAT: dict[str, str] = {f.backend: f.name for f in FORMATS.values()}


def _check_backend_name(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {str(backend)[:40]!r}; choose from {', '.join(BACKENDS)}")


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def backend_class(backend: str):
    """The runner class of ``backend``; :class:`BackendUnavailableError` if its package is missing."""
    _check_backend_name(backend)
    fi = by_backend(backend)
    if not _installed(fi.package):
        raise BackendUnavailableError(f"backend {backend!r} needs the {fi.package} package: {fi.install}")
    module, _, cls = BACKENDS[backend].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {backend!r} cannot be imported ({exc}): {fi.install}"
        ) from None


def available_backends() -> list[str]:
    """Backends whose packages are installed (some of their devices may still be unusable)."""
    return [f.backend for f in FORMATS.values() if _installed(f.package)]


def trust_reason(bundle, backend: str) -> str:
    """Why ``backend`` may not load ``bundle``'s artifact without explicit trust ("" if it may)."""
    fi = by_backend(backend)
    if code_is_trusted(bundle):
        return ""
    if fi.runs_code:
        return (
            f"{fi.title} archives can run arbitrary code when loaded; this bundle was not written by this "
            f"process, so set {TRUST_ENV}=1 (or pass --trust-model-code) if you trust where it came from"
        )
    if fi.name == "torch" and model_runs_code(bundle.manifest.model):
        return (
            f"the reference model {bundle.manifest.model[:80]!r} is code to import; set {TRUST_ENV}=1 "
            "(or pass --trust-model-code) if you trust this bundle"
        )
    return ""


def create_runner(bundle, backend: str, precision: str = "fp32", device: str = "cpu", **options):
    """A runner (not yet loaded) for ``bundle``'s ``backend`` artifact at ``precision`` on ``device``.

    Raises :class:`BackendUnavailableError` when the backend or device cannot be
    used here, :class:`ConfigError` when the artifact runs code nobody trusted,
    and :class:`BundleError` when the bundle has no such artifact; never falls
    back to another backend or device.
    """
    cls = backend_class(backend)
    if getattr(bundle.manifest, "generation", None):  # text-generation bundle: a decoder with a KV cache
        from .decoders import decoder_class

        cls = decoder_class(backend)
    device = str(device).lower()
    known = cls.known_devices()
    if device not in known:
        raise ConfigError(
            f"backend {backend!r} has no device {device[:40]!r}; choose from {', '.join(known)}"
        )
    usable, reason = cls.device_status(device)
    if not usable:
        raise BackendUnavailableError(f"{backend} on {device} is unavailable: {reason}")
    reason = cls.unsupported(precision, device)
    if reason:
        raise BackendUnavailableError(f"{backend} on {device}: {reason}")
    why = trust_reason(bundle, backend)
    if why:
        raise ConfigError(f"{backend}: {why}")
    return cls(bundle, precision=precision, device=device, **options)


def list_devices(backends: list[str] | None = None) -> list[dict]:
    """Rows ``{backend, device, usable, reason}`` for every backend x device."""
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
