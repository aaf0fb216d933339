"""What verify, bench and selfcheck run: backend x precision x device, and the environment they ran in.

torch-free: version numbers come from package metadata, not imports.
"""

from __future__ import annotations

from ..errors import BackendUnavailableError, ConfigError
from ..host import device_info
from .registry import BACKEND_FORMAT, BACKENDS, backend_class, list_devices, trust_reason

PRECISIONS = ("fp32", "fp16", "int8", "int4")


def open_bundle(bundle_or_path):
    """A loaded bundle (verified) from a path, or the bundle itself."""
    if hasattr(bundle_or_path, "artifact") and hasattr(bundle_or_path, "manifest"):
        return bundle_or_path
    from ..bundle import load_bundle

    return load_bundle(bundle_or_path)


def _skip(backend, device, precision, reason) -> dict:
    return {"backend": backend, "device": device, "precision": precision, "reason": reason}


def select_runs(
    bundle, *, backends=None, precisions=None, devices=None, exclude=()
) -> tuple[list[tuple], list[dict]]:
    """``([(backend, precision, device), ...], skipped)``.

    Defaults: every backend, every precision the bundle holds for it, every
    device.  Unusable devices, missing artifacts and artifacts that run
    untrusted code go to ``skipped`` with the reason (never silently replaced
    by something else).  Nothing runnable at all raises
    :class:`BackendUnavailableError` listing why.
    """
    for b in backends or ():
        if b not in BACKENDS:
            raise ConfigError(f"unknown backend {str(b)[:40]!r}; choose from {', '.join(BACKENDS)}")
    for p in precisions or ():
        if p not in PRECISIONS:
            raise ConfigError(f"unknown precision {str(p)[:20]!r}; choose from {', '.join(PRECISIONS)}")
    rows = list_devices([b for b in (backends or BACKENDS) if b not in exclude])
    wanted_devices = [str(d).lower() for d in devices] if devices else None
    if wanted_devices:
        known = {r["device"] for r in rows}
        unknown = [d for d in wanted_devices if d not in known]
        if unknown:
            raise ConfigError(
                f"unknown device(s) {', '.join(unknown)[:80]}; choose from {', '.join(sorted(known))}"
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
                skipped.append(_skip(backend, device, p, f"bundle has no {fmt}/{p} artifact"))
        if not precisions and not have:
            skipped.append(_skip(backend, device, None, f"bundle has no {fmt} artifact"))
        if not r["usable"]:
            if precs or not precisions:
                skipped.append(_skip(backend, device, None, r["reason"]))
            continue
        if precs:
            why = trust_reason(bundle, backend)
            if why:
                skipped.append(_skip(backend, device, None, why))
                continue
        cls = backend_class(backend)
        for p in precs:
            why = cls.unsupported(p, device)
            if why:
                skipped.append(_skip(backend, device, p, why))
            else:
                runs.append((backend, p, device))
    unique = list({(s["backend"], s["precision"], s["reason"]): s for s in reversed(skipped)}.values())[::-1]
    if not runs:
        why = "; ".join(f"{s['backend']}:{s['device']}: {s['reason']}" for s in unique) or "nothing selected"
        raise BackendUnavailableError(
            f"no backend x precision x device can run here: {why}; choose others with --backends/--precisions/"
            "--devices, or export the artifacts you need"
        )
    return runs, unique


def environment(backends=None) -> dict:
    """The device block plus every backend x device (of ``backends`` only, so probing never imports torch needlessly)."""
    d = device_info()
    d["devices"] = list_devices(list(backends) if backends else None)
    return d
