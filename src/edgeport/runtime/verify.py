"""Verify every backend x precision x device against the PyTorch reference, on the user's data.

One streaming pass: each batch of the eval source is read once, run through
the reference and every selected runner, and folded into per-output running
statistics (:class:`~edgeport.runtime.parity.ParityAccumulator`), so memory
is bounded by one batch whatever the data size.  Each row says its evidence:
real labelled, real unlabelled, or random.  The reference needs torch.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..errors import ConfigError, DataError, EdgeportError, ParityError, safe_text
from ..progress import progress_bar
from .parity import ParityAccumulator, criteria_for
from .plan import environment, open_bundle, select_runs
from .registry import BACKEND_FORMAT

SCHEMA = "edgeport.verify/2"
REFERENCE = ("torch", "fp32", "cpu")
BATCH_BYTES = 16 << 20  # one batch of inputs at most this large (runners size their arenas to it)


def eval_source(bundle, data=None, *, data_dir=None, max_pixels=None):
    """The data verify runs on: a DataSource, a spec string, (images, labels) arrays, an iterable of
    samples (:class:`edgeport.sources.feeds.Dataset` or a list of feeds), or the default.

    Default: MNIST's test split for a bundle with MNIST preprocessing; synthetic
    inputs for a random-weights bundle; otherwise the user must say.
    """
    from ..sources.data import ArraySource, DataSource, open_source

    if isinstance(data, DataSource):
        return data
    if data is not None and not isinstance(data, (str, tuple)):  # samples from Python (sources.feeds)
        from ..sources.feeds import FeedSource

        return FeedSource.from_items(data, bundle.signature, role="eval")
    pre = bundle.preprocessing
    if isinstance(data, tuple):
        try:
            images, labels = data
        except (TypeError, ValueError):
            raise DataError("data must be a pair (uint8 images, labels)") from None
        if pre is None:
            raise ConfigError("this bundle has no image input: pass data as a source (npz:FILE)")
        return ArraySource(
            np.asarray(images), None if labels is None else np.asarray(labels), pre, role="eval"
        )
    if data is None:
        if pre is not None and pre.preset == "mnist":
            data = "mnist"
        elif bundle.random_init:
            data = "synthetic"
        else:
            raise ConfigError(
                "verify needs data: pass --data imagefolder:DIR, npz:FILE or mnist (or --data synthetic for "
                "random inputs, which are weak evidence)"
            )
    return open_source(
        data,
        signature=bundle.signature,
        preprocessing=pre,
        data_dir=data_dir,
        role="eval",
        max_pixels=max_pixels,
    )


def label_map(bundle, source) -> np.ndarray | None:
    """Index map from the source's class numbers to the bundle's label numbers (None: identity)."""
    classes, labels = source.classes, bundle.labels
    if bundle.task.label_kind != "class":
        return None  # boxes, masks, tokens carry class ids the data source already mapped
    if not classes or not labels or list(classes) == list(labels)[: len(classes)]:
        return None
    if set(classes) <= set(labels):
        return np.asarray([labels.index(c) for c in classes], np.int64)
    if len(classes) == len(labels):
        return None  # same count, different names: compared by position
    raise DataError(
        f"the data's classes ({', '.join(map(str, classes[:5]))}...) do not match the bundle's labels "
        f"({', '.join(labels[:5])}...); pass data with the model's classes"
    )


def default_batch(bundle) -> int:
    values = bundle.signature.example_values(1)
    per = sum(int(np.prod(s.concrete_shape(values))) * s.np_dtype.itemsize for s in bundle.inputs)
    return int(max(1, min(1000, BATCH_BYTES // max(per, 1), bundle.signature.max_batch)))


def gate_overrides(bundle, gates: dict | None = None, max_accuracy_drop: float | None = None) -> dict:
    """The gates export recorded in the manifest (so export and verify judge alike), then the caller's."""
    out = {}
    block = bundle.manifest.task or {}
    for prec, table in (block.get("gates") or {}).items():
        for metric, v in table.items():
            out[f"{prec}.{metric}"] = v
    if max_accuracy_drop is not None and "accuracy_drop" in bundle.task.gate_table():
        for prec in ("fp16", "int8"):
            out[f"{prec}.accuracy_drop"] = max_accuracy_drop
    out.update(gates or {})
    return out


def verify(
    bundle_or_path,
    *,
    data=None,
    data_dir=None,
    backends=None,
    precisions=None,
    devices=None,
    atol: float | None = None,
    max_accuracy_drop: float | None = None,
    gates: dict | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    max_pixels: int | None = None,
) -> dict:
    """Compare every selected runner with PyTorch on ``data`` in one streaming pass; the report dict.

    Each row is judged by the elementwise tolerance (fp32/fp16; ``atol`` overrides it) and the task's
    gates at its precision: those recorded at export, then ``gates`` (``[precision.]metric -> threshold``)
    and ``max_accuracy_drop`` (a fraction: 0.002 = 0.2 points).  ``report["passed"]`` is False when any
    row failed (see :func:`raise_if_failed`).
    """
    bundle = open_bundle(bundle_or_path)
    if getattr(bundle.manifest, "generation", None):
        raise ConfigError(
            "a text-generation bundle is verified by edgeport.verify (edgeport.verification.verify), "
            "which runs the decoder checks"
        )
    runs, skipped = select_runs(bundle, backends=backends, precisions=precisions, devices=devices)
    source = eval_source(bundle, data, data_dir=data_dir, max_pixels=max_pixels)
    if limit is not None:
        source = source.subset(np.arange(min(limit, len(source))), source.role)
    if len(source) == 0:
        raise DataError("the eval data holds no samples")
    mapping = label_map(bundle, source)
    batch_size = batch_size or default_batch(bundle)
    overrides = gate_overrides(bundle, gates, max_accuracy_drop)
    rows, ref_metrics, dims = _stream(bundle, runs, source, mapping, batch_size, atol, overrides, progress)
    return {
        "schema": SCHEMA,
        "bundle": str(getattr(bundle, "path", "")),
        "model": getattr(bundle.manifest, "model", None),
        "task": bundle.task.name,
        "warnings": bundle.warnings,
        "failures": bundle.failures,
        "data": {**_brief(source.identity()), "evidence": source.evidence},
        "dim_points": dims,
        "reference": {
            "backend": REFERENCE[0],
            "precision": REFERENCE[1],
            "device": REFERENCE[2],
            "accuracy": ref_metrics.get("accuracy"),
            "metrics": ref_metrics,
        },
        "rows": rows,
        "skipped": skipped,
        "passed": all(r["passed"] for r in rows),
        "device": environment(sorted({r[0] for r in runs} | {REFERENCE[0]})),
    }


def _brief(identity: dict) -> dict:
    return {k: v for k, v in identity.items() if k not in ("indices", "file_indices", "files")}


class _Row:
    def __init__(self, bundle, backend, precision, device, batch_size, atol, overrides):
        self.backend, self.precision, self.device = backend, precision, device
        self.fmt = BACKEND_FORMAT[backend]
        self.crit = criteria_for(bundle.task, precision, backend, atol=atol, gates=overrides)
        self.name = f"{self.fmt}/{precision} on {backend}:{device}"
        self.acc = ParityAccumulator(bundle.signature, self.crit, self.name, precision, task=bundle.task)
        self.error: str | None = None
        self.seconds = 0.0
        self.runner = None
        try:
            self.runner = bundle.runner(backend, precision, device, max_batch=max(batch_size, 1)).load()
        except EdgeportError as exc:
            self.error = f"could not run: {exc}"

    def step(self, feeds, ref, labels) -> None:
        if self.runner is None:
            return
        t0 = time.perf_counter()
        try:
            out = self.runner.run_all(feeds)
        except EdgeportError as exc:
            self.error = f"could not run: {exc}"
            self.runner.close()
            self.runner = None
            return
        self.seconds += time.perf_counter() - t0
        self.acc.update(ref, out, labels)

    def to_dict(self, evidence: str) -> dict:
        if self.runner is not None:
            self.runner.close()
        res = self.acc.result(evidence=evidence)
        reasons = ([self.error] if self.error else []) + list(res.reasons)
        if not res.n and not reasons:
            reasons.append("no samples were compared")
        m = res.metrics
        return {
            "backend": self.backend,
            "device": self.device,
            "format": self.fmt,
            "precision": self.precision,
            "n": res.n,
            "evidence": evidence,
            "outputs": res.outputs,
            "max_abs": res.max_abs if res.n else None,
            "max_rel": res.max_rel if res.n else None,
            "task": res.task,
            "metrics": m,
            "gates": res.gates,
            "checks": list(res.checks),
            "agreement": m.get("agreement"),
            "accuracy": m.get("accuracy"),
            "ref_accuracy": m.get("ref_accuracy"),
            "accuracy_drop": m.get("accuracy_drop"),
            "passed": not reasons,
            "reasons": reasons,
            "tolerance": {"atol": self.crit.atol, "rtol": self.crit.rtol},
            "seconds": self.seconds,
        }


def _stream(bundle, runs, source, mapping, batch_size, atol, overrides, progress):
    from .parity import N_DIM_SAMPLES, dim_groups

    task = bundle.task
    bar = progress_bar(len(source), progress, "verify", unit="sample")
    rows, sample, dims = [], None, []
    ref_acc = task.accumulator()
    try:
        with bundle.runner(
            *REFERENCE[:1], precision=REFERENCE[1], device=REFERENCE[2], max_batch=batch_size
        ) as ref_r:
            rows = [_Row(bundle, b, p, d, batch_size, atol, overrides) for b, p, d in runs]
            for feeds, labels in source.batches(batch_size):
                if labels is not None and mapping is not None:
                    labels = mapping[labels]
                task.check_labels(labels)
                if sample is None:
                    sample = {k: v[:N_DIM_SAMPLES] for k, v in feeds.items()}
                ref = ref_r.run(feeds)
                ref_acc.update(ref, ref, labels)
                for row in rows:
                    row.step(feeds, ref, labels)
                bar.update(len(next(iter(feeds.values()))))
            if sample is not None and bundle.signature.free_dims:
                for label, feeds in dim_groups(bundle.signature, sample):
                    dims.append(label)
                    ref = ref_r.run(feeds)
                    for row in rows:
                        row.step(feeds, ref, None)
    finally:
        bar.close()
        for row in rows:
            if row.runner is not None and not row.runner.is_loaded:
                row.runner = None
    ref_metrics = {
        k: v for k, v in ref_acc.result().items() if k.startswith("ref_") or k in ("n", "labelled")
    }
    ref_metrics = {k.removeprefix("ref_"): v for k, v in ref_metrics.items()}
    return [r.to_dict(source.evidence) for r in rows], ref_metrics, dims


def raise_if_failed(report: dict) -> None:
    """:class:`ParityError` (exit code 1) naming every failed row, if any failed."""
    failed = [r for r in report["rows"] if not r["passed"]]
    if failed:
        listing = " | ".join(
            f"{r['format']}/{r['precision']} on {r['backend']}:{r['device']}: {'; '.join(r['reasons'])}"
            for r in failed
        )
        raise ParityError(f"verify failed for {len(failed)} of {len(report['rows'])} runs: {listing}", failed)


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_table(report: dict) -> str:
    """A fixed-width text table of the report, one row per backend x precision x device, with the task's
    metrics (agreement and accuracy for classifiers; matched boxes, mIoU, cosine... for the others)."""
    if report.get("task") == "text-generation":
        from .lm_check import format_verify_table

        return format_verify_table(report)
    from ..tasks import registry

    task = registry.task_class(report.get("task") or "classify")
    head = f"{'backend':<12} {'device':<8} {'precision':<9} {'max abs':>9} {'max rel':>9}  {'task metrics':<44} result"
    data = report["data"]
    ref = report["reference"]
    shown = task.summary_of(ref.get("metrics") or {}, label_only=True)
    acc = f"; PyTorch {shown}" if shown else ""
    lines = [
        f"verify {safe_text(report['bundle'])} ({task.name}) on {data['n']} samples ({data.get('kind')}, "
        f"{data['evidence']}){acc}"
    ]
    if report.get("dim_points"):
        lines.append(f"dynamic dims also checked at: {'; '.join(report['dim_points'])}")
    lines += [f"WARNING: {safe_text(w)}" for w in report.get("warnings", [])]
    for f in report.get("failures") or []:
        lines.append(
            f"NOT IN BUNDLE: {f['format']}/{f['precision']} failed at {f['stage']}: {safe_text(f['reason'])}"
        )
    lines += [head, "-" * len(head)]
    for r in report["rows"]:
        result = "PASS" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        metrics = task.summary_of(r.get("metrics") or {})
        lines.append(
            f"{r['backend']:<12} {r['device']:<8} {r['precision']:<9} {_fmt(r['max_abs'], '9.2e')} "
            f"{_fmt(r['max_rel'], '9.2e')}  {metrics:<44} {safe_text(result)}"
        )
        if len(r.get("outputs") or {}) > 1:
            for name, o in r["outputs"].items():
                lines.append(f"{'':<12} output {safe_text(name)} ({o['kind']}): max abs {o['max_abs']:.2e}")
    for s in report["skipped"]:
        prec = " " + s["precision"] if s["precision"] else ""
        lines.append(f"skipped {s['backend']}:{s['device']}{prec}: {safe_text(s['reason'])}")
    lines.append("all passed" if report["passed"] else "FAILED")
    return "\n".join(lines)


def print_table(report: dict, file=None) -> None:
    print(format_table(report), file=file or sys.stdout)
