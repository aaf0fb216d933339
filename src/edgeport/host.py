"""The ``device`` block every verify, bench and selfcheck result carries.  stdlib only.

Hostname, OS, architecture, CPU model and flags (x86 ``flags`` or Arm
``Features`` from ``/proc/cpuinfo``, plus the Arm implementer/part), core
count, memory, and the versions of every runtime that matters.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket

PACKAGES = (
    "edgeport",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "executorch",
    "torch",
    "onnx",
    "nncf",
    "pillow",
)
FLAGS = (
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
    # Arm (aarch64 Features)
    "neon",
    "asimd",
    "asimddp",
    "asimdhp",
    "fphp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
    "sme",
)
_ARM_IMPLEMENTERS = {
    "0x41": "Arm",
    "0x51": "Qualcomm",
    "0x61": "Apple",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0x53": "Samsung",
    "0xc0": "Ampere",
}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def cpu_info() -> dict:
    model, flags, arm = "", set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("model name", "Model", "Hardware", "cpu model") and not model:
                    model = value
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key in ("CPU implementer", "CPU part", "CPU architecture") and key not in arm:
                    arm[key] = value
    except OSError:
        pass
    if not model and arm:
        vendor = _ARM_IMPLEMENTERS.get(
            arm.get("CPU implementer", "").lower(), arm.get("CPU implementer", "?")
        )
        model = f"{vendor} part {arm.get('CPU part', '?')}"
    d = {
        "model": model or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "flags": [f for f in FLAGS if f in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": cpu_count(),
    }
    if arm:
        d["arm"] = arm
    return d


def memory_mb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, 1)
    except (ValueError, OSError, AttributeError):
        return None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def device_info() -> dict:
    """The device block: who ran this, on what."""
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu": cpu_info(),
        "cores": cpu_count(),
        "memory_mb": memory_mb(),
        "versions": versions(),
        "env_threads": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
    }


def device_name(info: dict) -> str:
    """A short label for a device block: hostname (arch)."""
    return f"{info.get('hostname', '?')} ({info.get('arch', '?')})"
