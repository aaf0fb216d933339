"""Schema 1 (edgeport 0.1) -> schema 2, in memory.

A schema-1 manifest describes one float32 input ``[batch, ...]`` and one
probabilities output, with MNIST-style scalar preprocessing.  The upgraded
manifest says the same in schema-2 terms; the bundle it belongs to is
read-only (nothing writes schema 1 back).
"""

from __future__ import annotations

from ..errors import BundleError
from ..specs import BATCH, DEFAULT_MAX_BATCH
from .paths import HINT, MANIFEST_FILE

_V1_KEYS = {
    "schema_version",
    "model",
    "input",
    "output",
    "preprocessing",
    "labels",
    "artifacts",
    "provenance",
    "environment",
    "parity",
    "calibration",
    "layer_report",
}


def _bad(what: str) -> BundleError:
    return BundleError(f"{MANIFEST_FILE} (schema 1): {what}; {HINT}")


def _spec(d, where: str) -> dict:
    if not isinstance(d, dict):
        raise _bad(f"{where} must be an object")
    shape = d.get("shape")
    if not isinstance(shape, list) or not shape or shape[0] != BATCH:
        raise _bad(f"{where}.shape must be a list starting with 'batch'")
    if any(isinstance(s, str) for s in shape[1:]):
        raise _bad(f"{where}.shape may name only the batch dimension in schema 1, got {shape}")
    out = {"name": d.get("name"), "dtype": d.get("dtype"), "shape": shape}
    if "value_range" in d:
        out["value_range"] = d["value_range"]
    return out


def upgrade(d: dict) -> dict:
    extra = sorted(set(d) - _V1_KEYS, key=str)
    if extra:
        raise _bad(f"unknown field(s) {', '.join(repr(k)[:40] for k in extra[:5])}")
    missing = sorted(_V1_KEYS - {"calibration", "layer_report"} - set(d))
    if missing:
        raise _bad(f"lacks field(s) {', '.join(missing)}")
    inp = _spec(d["input"], "input")
    out = _spec(d["output"], "output")
    out["kind"] = "probs"
    pre = d["preprocessing"]
    if not isinstance(pre, dict) or set(pre) != {"scale", "mean", "std"}:
        raise _bad("preprocessing must hold exactly scale, mean and std")
    for k in ("scale", "mean", "std"):
        if isinstance(pre[k], bool) or not isinstance(pre[k], (int, float)):
            raise _bad(f"preprocessing.{k} must be a number")
    if len(inp["shape"]) == 4 and inp["shape"][1] == 1:
        inp["layout"] = "NCHW"
        preprocessing = {
            "input": inp["name"],
            "preset": "mnist",
            "steps": [
                {"op": "decode", "mode": "L", "fit_digit": True},
                {"op": "scale", "factor": pre["scale"]},
                {"op": "normalize", "mean": [pre["mean"]], "std": [pre["std"]]},
                {"op": "layout", "layout": "NCHW"},
                {"op": "dtype", "dtype": "float32"},
            ],
        }
    else:
        preprocessing = None
    upgraded = {
        "schema_version": 2,
        "model": d["model"],
        "dims": {BATCH: {"min": 1, "max": DEFAULT_MAX_BATCH}},
        "inputs": [inp],
        "outputs": [out],
        "preprocessing": preprocessing,
        "labels": d["labels"],
        "artifacts": d["artifacts"],
        "provenance": d["provenance"],
        "environment": d["environment"],
        "parity": d["parity"],
        "warnings": [],
    }
    for k in ("calibration", "layer_report"):
        if d.get(k) is not None:
            upgraded[k] = d[k]
    return upgraded
