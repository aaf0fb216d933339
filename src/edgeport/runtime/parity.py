"""Precision-aware parity between an artifact's outputs and the PyTorch reference.

numpy only.  One tolerance table serves export-time checks, ``verify`` and the
pipeline gates.  Every comparison is collected; :func:`raise_on_failures`
raises one :class:`ParityError` that lists them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    atol: float | None  # elementwise |out - ref| <= atol + rtol * |ref|; None: not checked
    rtol: float | None
    min_agreement: float  # fraction of rows whose top-1 class matches the reference
    max_accuracy_drop: float | None  # in accuracy fraction (0.002 = 0.2 points); None: not checked


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-5, rtol=1e-5, min_agreement=1.0, max_accuracy_drop=None),
    # fp16-compressed weights are decompressed to fp32 at load: ~1e-3 relative error.
    "fp16": Tolerance(atol=2e-3, rtol=2e-3, min_agreement=0.998, max_accuracy_drop=0.002),
    "int8": Tolerance(atol=None, rtol=None, min_agreement=0.995, max_accuracy_drop=0.002),
}


def tolerance_for(
    precision: str, *, atol: float | None = None, max_accuracy_drop: float | None = None
) -> Tolerance:
    base = TOLERANCES[precision]
    return Tolerance(
        atol=atol if (atol is not None and base.atol is not None) else base.atol,
        rtol=base.rtol,
        min_agreement=base.min_agreement,
        max_accuracy_drop=max_accuracy_drop
        if (max_accuracy_drop is not None and base.max_accuracy_drop is not None)
        else base.max_accuracy_drop,
    )


@dataclass
class ParityResult:
    name: str  # e.g. "onnx/fp32 on onnxruntime:cpu"
    precision: str
    batch_size: int | None
    n: int
    max_abs: float
    max_rel: float
    agreement: float
    accuracy: float | None = None
    ref_accuracy: float | None = None
    passed: bool = True
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d

    def describe(self) -> str:
        bs = f" batch {self.batch_size}" if self.batch_size is not None else ""
        return f"{self.name}{bs}: " + "; ".join(self.reasons)


def compare(
    name: str,
    ref: np.ndarray,
    out: np.ndarray,
    precision: str,
    *,
    batch_size: int | None = None,
    labels: np.ndarray | None = None,
    tolerance: Tolerance | None = None,
) -> ParityResult:
    """Compare ``out`` to ``ref`` (both ``[N, C]``) under the precision's tolerance."""
    tol = tolerance or TOLERANCES[precision]
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    reasons: list[str] = []
    if ref.shape != out.shape:
        return ParityResult(
            name,
            precision,
            batch_size,
            len(ref),
            float("inf"),
            float("inf"),
            0.0,
            passed=False,
            reasons=(f"output shape {list(out.shape)} != reference {list(ref.shape)}",),
        )
    if not np.all(np.isfinite(out)):
        reasons.append(f"{int((~np.isfinite(out)).sum())} non-finite outputs")
    diff = np.abs(out - ref)
    max_abs = float(np.nanmax(diff)) if diff.size else 0.0
    max_rel = float(np.nanmax(diff / np.maximum(np.abs(ref), 1e-12))) if diff.size else 0.0
    agreement = float(np.mean(out.argmax(1) == ref.argmax(1))) if len(ref) else 1.0
    if tol.atol is not None:
        bound = tol.atol + tol.rtol * np.abs(ref)
        bad = int(np.sum(~(diff <= bound)))
        if bad:
            reasons.append(
                f"{bad} of {diff.size} values exceed |d| <= {tol.atol:g} + {tol.rtol:g}*|ref| "
                f"(max abs {max_abs:.3g}, max rel {max_rel:.3g})"
            )
    if agreement < tol.min_agreement:
        reasons.append(f"top-1 agreement {agreement * 100:.2f}% < {tol.min_agreement * 100:.2f}%")
    acc = ref_acc = None
    if labels is not None:
        labels = np.asarray(labels)
        acc = float(np.mean(out.argmax(1) == labels))
        ref_acc = float(np.mean(ref.argmax(1) == labels))
        if tol.max_accuracy_drop is not None and ref_acc - acc > tol.max_accuracy_drop + 1e-12:
            reasons.append(
                f"accuracy {acc * 100:.2f}% is {(ref_acc - acc) * 100:.2f} pt below PyTorch's {ref_acc * 100:.2f}% "
                f"(allowed {tol.max_accuracy_drop * 100:.2f} pt)"
            )
    return ParityResult(
        name,
        precision,
        batch_size,
        len(ref),
        max_abs,
        max_rel,
        agreement,
        acc,
        ref_acc,
        passed=not reasons,
        reasons=tuple(reasons),
    )


def raise_on_failures(results: list[ParityResult], what: str = "parity check") -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        listing = " | ".join(r.describe() for r in failed)
        raise ParityError(f"{what} failed for {len(failed)} of {len(results)} comparisons: {listing}", failed)
