"""What verify and bench run: backend x precision x device, and the environment they ran in.

torch-free: version numbers come from package metadata, not imports.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform

from ..errors import BackendUnavailableError, ConfigError
from .base import cpu_count
from .registry import BACKEND_FORMAT, BACKENDS, list_devices

PRECISIONS = ("fp32", "fp16", "int8")
_PACKAGES = ("edgeport", "numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "onnx", "nncf")
_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimddp",
)


def open_bundle(bundle_or_path):
    """A loaded bundle (verified) from a path, or the bundle itself."""
    if hasattr(bundle_or_path, "artifact") and hasattr(bundle_or_path, "manifest"):
        return bundle_or_path
    from ..export.bundle import load_bundle

    return load_bundle(bundle_or_path)


def select_runs(bundle, *, backends=None, precisions=None, devices=None) -> tuple[list[tuple], list[dict]]:
    """``([(backend, precision, device), ...], skipped)``.

    Defaults: every backend, every precision the bundle holds for it, every
    device.  Unusable devices and missing artifacts go to ``skipped`` with the
    reason (never silently replaced by something else).  Nothing runnable at
    all raises :class:`BackendUnavailableError` listing why.
    """
    for b in backends or ():
        if b not in BACKENDS:
            raise ConfigError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    for p in precisions or ():
        if p not in PRECISIONS:
            raise ConfigError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    rows = list_devices(list(backends or BACKENDS))
    wanted_devices = [str(d).lower() for d in devices] if devices else None
    if wanted_devices:
        known = {r["device"] for r in rows}
        unknown = [d for d in wanted_devices if d not in known]
        if unknown:
            raise ConfigError(
                f"unknown device(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
            )
        rows = [r for r in rows if r["device"] in wanted_devices]
    runs: list[tuple] = []
    skipped: list[dict] = []
    for r in rows:
        backend, device = r["backend"], r["device"]
        fmt = BACKEND_FORMAT[backend]
        have = [a.precision for a in bundle.artifacts if a.format == fmt]
        precs = [p for p in (precisions or have) if p in have]
        for p in precisions or ():
            if p not in have:
                skipped.append(
                    {
                        "backend": backend,
                        "device": device,
                        "precision": p,
                        "reason": f"bundle has no {fmt}/{p} artifact",
                    }
                )
        if not precisions and not have:
            skipped.append(
                {
                    "backend": backend,
                    "device": device,
                    "precision": None,
                    "reason": f"bundle has no {fmt} artifact",
                }
            )
        if not r["usable"]:
            if precs or not precisions:
                skipped.append(
                    {"backend": backend, "device": device, "precision": None, "reason": r["reason"]}
                )
            continue
        runs.extend((backend, p, device) for p in precs)
    # A missing-artifact note repeats per device; keep one of each.
    seen, unique = set(), []
    for s in skipped:
        key = (s["backend"], s["precision"], s["reason"]) if "artifact" in s["reason"] else tuple(s.values())
        if key not in seen:
            seen.add(key)
            unique.append(s)
    if not runs:
        why = "; ".join(f"{s['backend']}:{s['device']}: {s['reason']}" for s in unique) or "nothing selected"
        raise BackendUnavailableError(f"no backend x precision x device can run here: {why}")
    return runs, unique


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and model in (
                    "",
                    platform.machine(),
                    platform.processor(),
                ):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "machine": platform.machine(),
        "flags": [f for f in _FLAGS if f in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": cpu_count(),
    }


def environment(backends=None) -> dict:
    """Versions, CPU and devices (of ``backends`` only, so probing never imports torch needlessly)."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "cpu": cpu_info(),
        "devices": list_devices(list(backends) if backends else None),
        "env_threads": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
    }
