"""Precision-aware parity between an artifact's outputs and the PyTorch reference, per output.

numpy only.  One tolerance table serves export-time parity, int8 selection,
``verify``, ``selfcheck`` and the pipeline gates.  Comparisons stream: a
:class:`ParityAccumulator` takes batch after batch and keeps only running
statistics, so verifying a large data set needs memory for one batch.

Per output:

- every output: elementwise ``|out - ref| <= atol * scale + rtol * |ref|`` where
  ``scale`` is 1 for probabilities and ``max(1, max |ref|)`` for logits and raw
  outputs (float32 rounding grows with magnitude); int8 and fp16 skip it;
- ``probs`` and ``logits`` outputs: top-1 agreement (argmax) with the
  reference, and accuracy against labels where they exist (primary output);
- ``raw`` outputs: tolerance only.

Every comparison is collected; :func:`raise_on_failures` raises one
:class:`ParityError` listing them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    atol: float | None  # None: elementwise error not checked (int8)
    rtol: float | None
    min_agreement: float  # fraction of rows whose top-1 class matches the reference
    max_accuracy_drop: float | None  # accuracy fraction (0.002 = 0.2 points); None: not checked


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-5, rtol=1e-5, min_agreement=1.0, max_accuracy_drop=None),
    # fp16-compressed weights are decompressed to fp32 at load: ~1e-3 relative error.
    "fp16": Tolerance(atol=2e-3, rtol=2e-3, min_agreement=0.998, max_accuracy_drop=0.002),
    "int8": Tolerance(atol=None, rtol=None, min_agreement=0.995, max_accuracy_drop=0.002),
}
# Per-backend exceptions to the table, keyed (backend, precision).  None needed so far:
# fp32 OpenVINO runs with INFERENCE_PRECISION_HINT=f32, so bf16 never enters a comparison.
BACKEND_TOLERANCES: dict[tuple[str, str], Tolerance] = {}


def tolerance_for(
    precision: str,
    backend: str | None = None,
    *,
    atol: float | None = None,
    max_accuracy_drop: float | None = None,
    min_agreement: float | None = None,
) -> Tolerance:
    base = BACKEND_TOLERANCES.get((backend or "", precision), TOLERANCES[precision])
    return Tolerance(
        atol=atol if (atol is not None and base.atol is not None) else base.atol,
        rtol=(atol if atol is not None else base.rtol) if base.rtol is not None else None,
        min_agreement=base.min_agreement if min_agreement is None else min_agreement,
        max_accuracy_drop=max_accuracy_drop
        if (max_accuracy_drop is not None and base.max_accuracy_drop is not None)
        else base.max_accuracy_drop,
    )


@dataclass
class _Stats:
    kind: str
    n: int = 0
    values: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ref: float = 0.0
    bad: int = 0
    nonfinite: int = 0
    agree: int = 0
    correct: int = 0
    ref_correct: int = 0
    labelled: int = 0
    shape_error: str = ""


@dataclass
class ParityResult:
    name: str  # e.g. "onnx/fp32 on onnxruntime:cpu"
    precision: str
    batch_size: int | None
    n: int
    outputs: dict = field(default_factory=dict)  # output name -> statistics and verdict
    passed: bool = True
    reasons: tuple[str, ...] = ()
    evidence: str | None = None

    def _primary(self) -> dict:
        return next(iter(self.outputs.values()), {}) if self.outputs else {}

    @property
    def max_abs(self) -> float:
        return max((o["max_abs"] for o in self.outputs.values()), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o["max_rel"] for o in self.outputs.values()), default=0.0)

    @property
    def agreement(self) -> float | None:
        vals = [o["agreement"] for o in self.outputs.values() if o.get("agreement") is not None]
        return vals[0] if vals else None

    @property
    def accuracy(self) -> float | None:
        return next((o["accuracy"] for o in self.outputs.values() if o.get("accuracy") is not None), None)

    @property
    def ref_accuracy(self) -> float | None:
        return next(
            (o["ref_accuracy"] for o in self.outputs.values() if o.get("ref_accuracy") is not None), None
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d |= {
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "agreement": self.agreement,
            "accuracy": self.accuracy,
            "ref_accuracy": self.ref_accuracy,
        }
        return d

    def describe(self) -> str:
        bs = f" batch {self.batch_size}" if self.batch_size is not None else ""
        return f"{self.name}{bs}: " + "; ".join(self.reasons)


class ParityAccumulator:
    """Running per-output parity of one artifact against the reference, batch by batch."""

    def __init__(
        self, signature, tolerance: Tolerance, name: str, precision: str, *, primary: str | None = None
    ):
        self.signature, self.tol, self.name, self.precision = signature, tolerance, name, precision
        self.primary = primary or signature.primary_output.name
        self.stats = {s.name: _Stats(s.kind or "raw") for s in signature.outputs}

    def update(self, ref: dict, out: dict, labels: np.ndarray | None = None) -> None:
        for spec in self.signature.outputs:
            st = self.stats[spec.name]
            r = np.asarray(ref[spec.name], dtype=np.float64)
            o = np.asarray(out[spec.name], dtype=np.float64)
            if r.shape != o.shape:
                st.shape_error = f"shape {list(o.shape)} != reference {list(r.shape)}"
                continue
            st.n += len(r)
            st.values += r.size
            finite = np.isfinite(o)
            st.nonfinite += int(r.size - np.count_nonzero(finite))
            diff = np.where(finite, np.abs(o - r), np.inf)
            if diff.size:
                st.max_abs = max(st.max_abs, float(diff.max()))
                st.max_rel = max(st.max_rel, float((diff / np.maximum(np.abs(r), 1e-12)).max()))
                st.max_ref = max(st.max_ref, float(np.abs(r).max()))
            if self.tol.atol is not None:
                # logits/raw: the absolute tolerance scales with the largest reference value seen so far
                scale_now = 1.0 if st.kind == "probs" else max(1.0, st.max_ref)
                bound = self.tol.atol * scale_now + self.tol.rtol * np.abs(r)
                st.bad += int(np.count_nonzero(~(diff <= bound)))
            if st.kind in ("probs", "logits") and r.ndim >= 2:
                pr, po = r.argmax(-1), o.argmax(-1)
                st.agree += int(np.count_nonzero(pr == po))
                if labels is not None and spec.name == self.primary:
                    lab = np.asarray(labels).reshape(pr.shape[0], *([] if pr.ndim == 1 else pr.shape[1:]))
                    st.labelled += int(lab.size)
                    st.correct += int(np.count_nonzero(po == lab))
                    st.ref_correct += int(np.count_nonzero(pr == lab))

    def result(self, batch_size: int | None = None, evidence: str | None = None) -> ParityResult:
        outs, reasons = {}, []
        n = max((s.n for s in self.stats.values()), default=0)
        for name, st in self.stats.items():
            why = []
            rows = max(st.n, 1)
            if st.shape_error:
                why.append(st.shape_error)
            if st.nonfinite:
                why.append(f"{st.nonfinite} non-finite values")
            if self.tol.atol is not None and st.bad:
                scale = "" if st.kind == "probs" else "*max(1,|ref|max)"
                why.append(
                    f"{st.bad} of {st.values} values exceed |d| <= {self.tol.atol:g}{scale} + {self.tol.rtol:g}*|ref| "
                    f"(max abs {st.max_abs:.3g}, max rel {st.max_rel:.3g})"
                )
            agreement = st.agree / rows if st.kind in ("probs", "logits") and st.n else None
            if agreement is not None and agreement < self.tol.min_agreement:
                why.append(f"top-1 agreement {agreement * 100:.2f}% < {self.tol.min_agreement * 100:.2f}%")
            acc = ref_acc = None
            if st.labelled:
                acc, ref_acc = st.correct / st.labelled, st.ref_correct / st.labelled
                drop = self.tol.max_accuracy_drop
                if drop is not None and ref_acc - acc > drop + 1e-12:
                    why.append(
                        f"accuracy {acc * 100:.2f}% is {(ref_acc - acc) * 100:.2f} pt below PyTorch's "
                        f"{ref_acc * 100:.2f}% (allowed {drop * 100:.2f} pt)"
                    )
            outs[name] = {
                "kind": st.kind,
                "n": st.n,
                "max_abs": st.max_abs,
                "max_rel": st.max_rel,
                "agreement": agreement,
                "accuracy": acc,
                "ref_accuracy": ref_acc,
                "passed": not why,
                "reasons": why,
            }
            reasons += [f"{name}: {w}" if len(self.stats) > 1 else w for w in why]
        return ParityResult(
            self.name, self.precision, batch_size, n, outs, not reasons, tuple(reasons), evidence
        )


def compare(
    name: str,
    signature,
    ref: dict,
    out: dict,
    precision: str,
    *,
    batch_size: int | None = None,
    labels: np.ndarray | None = None,
    tolerance: Tolerance | None = None,
    evidence: str | None = None,
) -> ParityResult:
    """One-shot comparison of outputs by name (both dicts) under the precision's tolerance."""
    acc = ParityAccumulator(signature, tolerance or TOLERANCES[precision], name, precision)
    acc.update(ref, out, labels)
    return acc.result(batch_size, evidence)


def raise_on_failures(results: list[ParityResult], what: str = "parity check") -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        listing = " | ".join(r.describe() for r in failed)
        raise ParityError(f"{what} failed for {len(failed)} of {len(results)} comparisons: {listing}", failed)
