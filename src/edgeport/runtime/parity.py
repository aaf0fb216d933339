"""Parity between an artifact's outputs and the PyTorch reference: elementwise per output, and the task's
metrics and gates.

numpy only.  One table of criteria serves export-time parity, int8 selection,
``verify``, ``selfcheck`` and the pipeline gates.  Comparisons stream: a
:class:`ParityAccumulator` takes batch after batch and keeps only running
statistics, so verifying a large data set needs memory for one batch.

A row is judged by:

- every output, fp32 and fp16: elementwise ``|out - ref| <= atol * scale + rtol * |ref|``
  where ``scale`` is 1 for probabilities and ``max(1, max |ref|)`` for logits and raw
  outputs (float32 rounding grows with magnitude); int8 skips it;
- the task's metrics (agreement, matched boxes, mIoU, cosine, token agreement...)
  against its gates at that precision (:mod:`edgeport.tasks`).

No row passes without a check that can fail: when neither the elementwise
check nor any gate could be evaluated, the row fails and says why.  Every
comparison is collected; :func:`raise_on_failures` raises one
:class:`ParityError` listing them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ParityError
from ..specs import BATCH

# Elementwise tolerance per precision (atol, rtol); None: not checked (int8 is judged by the task's gates).
ELEMENTWISE: dict[str, tuple[float | None, float | None]] = {
    "fp32": (1e-5, 1e-5),
    # fp16-compressed weights are decompressed to fp32 at load: ~1e-3 relative error.
    "fp16": (2e-3, 2e-3),
    "int8": (None, None),
}
# Edge inputs (zeros, ones, the value-range extremes, uniform noise) are outside the data a model was
# trained on, where fp32 rounding differences between correct implementations grow: a torchvision
# MobileNetV3-small at 224 px agrees with PyTorch within 3e-5 on real photos on ONNX Runtime and
# ExecuTorch, and by 4.5e-4 on an all-zero image (PyTorch fp32 vs fp64: 1e-5).  They are there to
# catch broken artifacts (NaN, overflow, a wrong constant), so their elementwise tolerance is this many
# times the precision's, and the task's metrics (agreement...) are measured on real rows only.
EDGE_TOLERANCE_FACTOR = 10.0
# Per-backend exceptions, keyed (backend, precision).  None needed so far: fp32 OpenVINO runs with
# INFERENCE_PRECISION_HINT=f32, so bf16 never enters a comparison.
BACKEND_ELEMENTWISE: dict[tuple[str, str], tuple[float | None, float | None]] = {}


@dataclass(frozen=True)
class Criteria:
    """What a row must meet: the elementwise tolerance (None: not checked) and the task's gates."""

    atol: float | None
    rtol: float | None
    gates: dict = field(default_factory=dict)  # metric -> threshold; the task's gate table gives min/max


N_DIM_SAMPLES = 4  # samples run at each free dim's min, middle and max


def resize_feeds(signature, feeds: dict, values: dict[str, int]) -> dict:
    """``feeds`` with every axis named by a dim in ``values`` cut or tiled to that size (token ids stay
    valid ids, images stay images): inputs for checking a dynamic dim at another size."""
    out = {}
    for spec in signature.inputs:
        x = feeds[spec.name]
        for axis, d in enumerate(spec.shape):
            if isinstance(d, str) and d != BATCH and d in values and x.shape[axis] != values[d]:
                reps = -(-values[d] // x.shape[axis])
                x = np.take(np.concatenate([x] * reps, axis=axis), np.arange(values[d]), axis=axis)
        out[spec.name] = np.ascontiguousarray(x)
    return out


def dim_groups(signature, sample: dict) -> list[tuple[str, dict]]:
    """(label, feeds) for every free dim at its min, middle and max: ``sample`` resized along it."""
    groups = []
    for name, dim in signature.free_dims.items():
        for v in dim.points():  # one dim at a time; the others keep the sample's sizes
            groups.append((f"{name}={v}", resize_feeds(signature, sample, {name: v})))
    return groups


def criteria_for(
    task, precision: str, backend: str | None = None, *, atol: float | None = None, gates: dict | None = None
) -> Criteria:
    """The criteria for ``precision`` (and ``backend``): documented defaults, then the caller's overrides.

    ``atol`` replaces both elementwise tolerances where the precision has them;
    ``gates`` maps metric (or ``precision.metric``) -> threshold, None to switch a gate off.
    """
    base_atol, base_rtol = BACKEND_ELEMENTWISE.get((backend or "", precision), ELEMENTWISE[precision])
    if atol is not None and base_atol is not None:
        base_atol = base_rtol = atol
    return Criteria(base_atol, base_rtol, task.gates_for(precision, gates))


@dataclass
class _Stats:
    kind: str
    n: int = 0
    values: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ref: float = 0.0
    bad: int = 0
    bad_edge: int = 0  # of ``bad``: values of edge rows (judged at EDGE_TOLERANCE_FACTOR)
    edge_rows: int = 0
    nonfinite: int = 0
    shape_error: str = ""


@dataclass
class ParityResult:
    name: str  # e.g. "onnx/fp32 on onnxruntime:cpu"
    precision: str
    batch_size: int | None
    n: int
    outputs: dict = field(default_factory=dict)  # output name -> elementwise statistics and verdict
    passed: bool = True
    reasons: tuple[str, ...] = ()
    evidence: str | None = None
    task: str = ""
    metrics: dict = field(default_factory=dict)  # the task's metrics
    gates: dict = field(default_factory=dict)  # the thresholds that applied
    checks: tuple[str, ...] = ()  # what was actually evaluated (tolerance, gate names)

    @property
    def max_abs(self) -> float:
        return max((o["max_abs"] for o in self.outputs.values()), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o["max_rel"] for o in self.outputs.values()), default=0.0)

    @property
    def agreement(self) -> float | None:
        return self.metrics.get("agreement")

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def ref_accuracy(self) -> float | None:
        return self.metrics.get("ref_accuracy")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d["checks"] = list(self.checks)
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
    """Running parity of one artifact against the reference, batch by batch: elementwise per output,
    plus the task's metrics (which also see the labels, where there are any)."""

    def __init__(self, signature, criteria: Criteria, name: str, precision: str, *, task=None) -> None:
        if task is None:
            from ..tasks import registry

            task = registry.make(signature, registry.infer_from_kinds(signature))
        self.signature, self.crit, self.name, self.precision, self.task = (
            signature,
            criteria,
            name,
            precision,
            task,
        )
        self.stats = {s.name: _Stats(s.kind or "raw") for s in signature.outputs}
        self.metrics = task.accumulator()
        self._shapes_ok = True

    def update(self, ref: dict, out: dict, labels=None, *, edge=None) -> None:
        """One batch.  ``edge``: a boolean mask of the rows that are edge inputs (see
        :data:`EDGE_TOLERANCE_FACTOR`): a looser elementwise bound, and left out of the task's metrics."""
        edge = None if edge is None or not np.any(edge) else np.asarray(edge, dtype=bool)
        ok = True
        for spec in self.signature.outputs:
            ok &= self._elementwise(self.stats[spec.name], ref[spec.name], out[spec.name], edge)
        if ok:
            if edge is None:
                self.metrics.update(ref, out, labels)
            elif not edge.all():
                real = np.flatnonzero(~edge)
                self.metrics.update(
                    {k: np.asarray(v)[real] for k, v in ref.items()},
                    {k: np.asarray(v)[real] for k, v in out.items()},
                    None if labels is None else [labels[i] for i in real],
                )
        self._shapes_ok &= ok

    def _elementwise(self, st: _Stats, ref, out, edge=None) -> bool:
        r = np.asarray(ref, dtype=np.float64)
        o = np.asarray(out, dtype=np.float64)
        if r.shape != o.shape:
            st.shape_error = f"shape {list(o.shape)} != reference {list(r.shape)}"
            return False
        st.n += len(r)
        st.values += r.size
        finite = np.isfinite(o)
        st.nonfinite += int(r.size - np.count_nonzero(finite))
        diff = np.where(finite, np.abs(o - r), np.inf)
        if diff.size:
            st.max_abs = max(st.max_abs, float(diff.max()))
            st.max_rel = max(st.max_rel, float((diff / np.maximum(np.abs(r), 1e-12)).max()))
            st.max_ref = max(st.max_ref, float(np.abs(r).max()))
        if self.crit.atol is not None:
            # logits/raw: the absolute tolerance scales with the largest reference value seen so far
            scale_now = 1.0 if st.kind == "probs" else max(1.0, st.max_ref)
            bound = self.crit.atol * scale_now + self.crit.rtol * np.abs(r)
            over = ~(diff <= bound)
            if edge is not None and r.ndim and len(r) == len(edge):
                rows = edge.reshape((-1,) + (1,) * (r.ndim - 1))
                over = np.where(rows, ~(diff <= bound * EDGE_TOLERANCE_FACTOR), over)
                st.bad_edge += int(np.count_nonzero(over & rows))
                st.edge_rows += int(edge.sum())
            st.bad += int(np.count_nonzero(over))
        return True

    def _output_reasons(self, st: _Stats) -> list[str]:
        why = []
        if st.shape_error:
            why.append(st.shape_error)
        if st.nonfinite:
            why.append(f"{st.nonfinite} non-finite values")
        if self.crit.atol is not None and st.bad:
            scale = "" if st.kind == "probs" else "*max(1,|ref|max)"
            edge = (
                f"; {st.bad_edge} of them in the {st.edge_rows} edge inputs, judged at "
                f"{EDGE_TOLERANCE_FACTOR:g}x that"
                if st.edge_rows
                else ""
            )
            why.append(
                f"{st.bad} of {st.values} values exceed |d| <= {self.crit.atol:g}{scale} + {self.crit.rtol:g}*|ref| "
                f"(max abs {st.max_abs:.3g}, max rel {st.max_rel:.3g}{edge})"
            )
        return why

    def result(self, batch_size: int | None = None, evidence: str | None = None) -> ParityResult:
        outs, reasons = {}, []
        n = max((s.n for s in self.stats.values()), default=0)
        for name, st in self.stats.items():
            why = self._output_reasons(st)
            outs[name] = {
                "kind": st.kind,
                "n": st.n,
                "max_abs": st.max_abs,
                "max_rel": st.max_rel,
                "passed": not why,
                "reasons": why,
            }
            reasons += [f"{name}: {w}" if len(self.stats) > 1 else w for w in why]
        metrics = self.metrics.result() if n else {}
        checks = ["tolerance"] if self.crit.atol is not None and n else []
        if n and self._shapes_ok:
            task_reasons, evaluated = self.task.judge(metrics, self.crit.gates)
            reasons += task_reasons
            checks += evaluated
        if n and not checks:
            reasons.append(
                f"nothing could be judged: no elementwise tolerance at {self.precision} and none of the "
                f"{self.task.name} gates ({', '.join(self.crit.gates) or 'none set'}) could be measured "
                f"on these outputs ({_why_unmeasured(metrics)})"
            )
        return ParityResult(
            self.name,
            self.precision,
            batch_size,
            n,
            outs,
            not reasons,
            tuple(reasons),
            evidence,
            self.task.name,
            metrics,
            dict(self.crit.gates),
            tuple(checks),
        )


def golden_edge_rows(golden: dict | None, n: int) -> np.ndarray:
    """The edge-input mask of a bundle's golden I/O: its last ``edge_cases`` rows."""
    k = int((golden or {}).get("edge_cases") or 0)
    return np.arange(n) >= n - min(k, n)


def _why_unmeasured(metrics: dict) -> str:
    if metrics.get("ref_boxes") == 0:
        return "the reference made no detections above the score threshold; lower it with --task-param"
    return "no labels for the label metrics, and no reference metric applies"


def compare(
    name: str,
    signature,
    ref: dict,
    out: dict,
    precision: str,
    *,
    task=None,
    batch_size: int | None = None,
    labels=None,
    criteria: Criteria | None = None,
    evidence: str | None = None,
) -> ParityResult:
    """One-shot comparison of outputs by name (both dicts) under the precision's default criteria."""
    if task is None:
        from ..tasks import registry

        task = registry.make(signature, registry.infer_from_kinds(signature))
    acc = ParityAccumulator(signature, criteria or criteria_for(task, precision), name, precision, task=task)
    acc.update(ref, out, labels)
    return acc.result(batch_size, evidence)


def raise_on_failures(results: list[ParityResult], what: str = "parity check") -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        listing = " | ".join(r.describe() for r in failed)
        raise ParityError(f"{what} failed for {len(failed)} of {len(results)} comparisons: {listing}", failed)
