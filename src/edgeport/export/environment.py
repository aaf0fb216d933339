"""Tool versions and CPU model/flags for the manifest (stdlib only)."""

from __future__ import annotations

import platform
import re
from importlib import metadata

PACKAGES = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "numpy")
FLAG_PATTERN = re.compile(r"^(avx|avx2|fma|f16c|sse4_2|avx512.*|avx_vnni.*|amx.*)$")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = sorted(fl for fl in value.split() if FLAG_PATTERN.match(fl))
    except OSError:
        pass
    import os

    return {"model": model, "flags": flags, "cores": os.cpu_count(), "machine": platform.machine()}


def environment() -> dict:
    return {
        "versions": {pkg: _version(pkg) for pkg in PACKAGES}
        | {"python": platform.python_version(), "edgeport": _version("edgeport")},
        "platform": platform.platform(),
        "cpu": cpu_info(),
    }
