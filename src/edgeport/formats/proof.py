"""Proof of quantization, shared by the format modules: the failure message and the per-layer check.

The tutorial this project grew from shipped an "optimized" model in which
nothing was quantized.  Each format's ``int8_layers`` reads the file itself
(never the object that produced it) and lists every weighted layer
(convolution, matmul, gemm with a constant weight) with its weight count and
whether the weight is stored in int8.  :func:`prove_layers` then checks the
plan: the layers planned as int8 are int8 (at least ``MIN_COVERAGE`` of their
weights: a quantizer may keep an odd layer float by its own rules, and those are
listed), the layers planned to stay float are float, and at least one layer is
int8.  A total-size ratio is recorded for information only: it penalised
legitimate mixed precision (MobileNetV3 under NNCF) and small models.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError

# Of the weights of the layers planned as int8, at least this share must be stored in int8.
MIN_COVERAGE = 0.5
# Kept for the record: the size an all-int8 artifact should come near (weights at 1 byte of 4).
MAX_SIZE_RATIO = 0.30
SIZE_ALLOWANCE = 32 << 10


def fail(path, check: str, seen: str, expected: str) -> ExportError:
    return ExportError(
        f"int8 proof failed for {Path(path).name}: check '{check}' - found {seen}, expected {expected}; "
        "the quantizer did not produce the int8 model it was asked for (report the quantizer settings that "
        "produced this file)"
    )


def planned_float(row: dict, plan) -> bool:
    """Whether ``row`` (a layer of an int8 artifact) belongs to one of the modules planned to stay float."""
    for module in plan or ():
        scope = "/" + module.replace(".", "/")
        dotted = module
        name = row.get("layer", "")
        if dotted and (
            name == dotted or name.startswith(dotted + ".") or scope in name or f"/{dotted}/" in name
        ):
            return True
    return False


def prove_layers(path, layers: list[dict], plan=()) -> dict:
    """The per-layer int8 proof of one artifact (see the module docstring); the summary for the manifest."""
    if not layers:
        raise fail(path, "int8 layers", "no weighted layers (conv, matmul, gemm) in the file", "at least one")
    int8 = [r for r in layers if r["int8"]]
    if not int8:
        raise fail(
            path,
            "int8 layers",
            f"all {len(layers)} weighted layers store float weights",
            "at least one int8 layer",
        )
    kept = [r for r in layers if planned_float(r, plan)]
    wrong = [r["layer"] for r in kept if r["int8"]]
    if wrong:
        raise fail(
            path, "float plan", f"layers planned float stored in int8 ({', '.join(wrong[:5])})", "float"
        )
    planned = [r for r in layers if not planned_float(r, plan)]
    total = sum(r["params"] for r in planned) or 1
    coverage = sum(r["params"] for r in planned if r["int8"]) / total
    left = [r["layer"] for r in planned if not r["int8"]]
    if coverage < MIN_COVERAGE:
        raise fail(
            path,
            "int8 coverage",
            f"{coverage * 100:.1f}% of the weights planned as int8 stored in int8 (float: {', '.join(left[:5])})",
            f">= {MIN_COVERAGE * 100:.0f}%",
        )
    return {
        "weighted_layers": len(layers),
        "int8_layers": len(int8),
        "int8_weight_share": round(coverage, 4),
        "float_layers_planned": [r["layer"] for r in kept][:200],
        "float_layers_by_quantizer": left[:200],
    }


def size_ratio(int8_artifact, fp32_artifact) -> float:
    """``int8 bytes / fp32 bytes`` over every file of each artifact (recorded, not judged)."""
    return int8_artifact.total_bytes / max(1, fp32_artifact.total_bytes)
