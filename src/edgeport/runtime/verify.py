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
from dataclasses import asdict

import numpy as np

from ..errors import ConfigError, DataError, EdgeportError, ParityError, safe_text
from .benchmark import progress_bar
from .parity import ParityAccumulator, tolerance_for
from .plan import environment, open_bundle, select_runs
from .registry import BACKEND_FORMAT

SCHEMA = "edgeport.verify/2"
REFERENCE = ("torch", "fp32", "cpu")
BATCH_BYTES = 16 << 20  # one batch of inputs at most this large (runners size their arenas to it)


def eval_source(bundle, data=None, *, data_dir=None, max_pixels=None):
    """The data verify runs on: a DataSource, a spec string, (images, labels) arrays, or the default.

    Default: MNIST's test split for a bundle with MNIST preprocessing; synthetic
    inputs for a random-weights bundle; otherwise the user must say.
    """
    from ..sources.data import ArraySource, DataSource, open_source

    if isinstance(data, DataSource):
        return data
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
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    max_pixels: int | None = None,
    gates: dict | None = None,
) -> dict:
    """Compare every selected runner with PyTorch on ``data`` in one streaming pass; the report dict.

    ``atol`` overrides the elementwise tolerance of fp32/fp16; ``max_accuracy_drop``
    (a fraction: 0.002 = 0.2 points) that of fp16/int8.  ``report["passed"]``
    is False when any row failed (see :func:`raise_if_failed`).
    """
    bundle = open_bundle(bundle_or_path)
    if getattr(bundle.manifest, "generation", None):  # text-generation bundle: agreement, perplexity, greedy
        from ..lm.verify import verify_lm

        sel = {"backends": backends, "precisions": precisions, "devices": devices}
        return verify_lm(bundle, data=data, **sel, gates=gates, tokens=limit, progress=progress)
    runs, skipped = select_runs(bundle, backends=backends, precisions=precisions, devices=devices)
    source = eval_source(bundle, data, data_dir=data_dir, max_pixels=max_pixels)
    if limit is not None:
        source = source.subset(np.arange(min(limit, len(source))), source.role)
    if len(source) == 0:
        raise DataError("the eval data holds no samples")
    mapping = label_map(bundle, source)
    batch_size = batch_size or default_batch(bundle)
    rows, ref_acc = _stream(bundle, runs, source, mapping, batch_size, atol, max_accuracy_drop, progress)
    return {
        "schema": SCHEMA,
        "bundle": str(getattr(bundle, "path", "")),
        "model": getattr(bundle.manifest, "model", None),
        "warnings": bundle.warnings,
        "data": {**_brief(source.identity()), "evidence": source.evidence},
        "reference": {
            "backend": REFERENCE[0],
            "precision": REFERENCE[1],
            "device": REFERENCE[2],
            "accuracy": ref_acc,
        },
        "rows": rows,
        "skipped": skipped,
        "passed": all(r["passed"] for r in rows),
        "device": environment(sorted({r[0] for r in runs} | {REFERENCE[0]})),
    }


def _brief(identity: dict) -> dict:
    return {k: v for k, v in identity.items() if k not in ("indices", "file_indices", "files")}


class _Row:
    def __init__(self, bundle, backend, precision, device, batch_size, atol, drop):
        self.backend, self.precision, self.device = backend, precision, device
        self.fmt = BACKEND_FORMAT[backend]
        self.tol = tolerance_for(precision, backend, atol=atol, max_accuracy_drop=drop)
        self.name = f"{self.fmt}/{precision} on {backend}:{device}"
        self.acc = ParityAccumulator(bundle.signature, self.tol, self.name, precision)
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
            "agreement": res.agreement,
            "accuracy": res.accuracy,
            "ref_accuracy": res.ref_accuracy,
            "accuracy_drop": (res.ref_accuracy - res.accuracy) if res.accuracy is not None else None,
            "passed": not reasons,
            "reasons": reasons,
            "tolerance": asdict(self.tol),
            "seconds": self.seconds,
        }


def _stream(bundle, runs, source, mapping, batch_size, atol, drop, progress):
    bar = progress_bar(len(source), progress, "verify", unit="sample")
    rows = []
    try:
        with bundle.runner(
            *REFERENCE[:1], precision=REFERENCE[1], device=REFERENCE[2], max_batch=batch_size
        ) as ref_r:
            rows = [_Row(bundle, b, p, d, batch_size, atol, drop) for b, p, d in runs]
            correct = labelled = 0
            primary = bundle.signature.primary_output
            for feeds, labels in source.batches(batch_size):
                if labels is not None and mapping is not None:
                    labels = mapping[labels]
                ref = ref_r.run(feeds)
                if labels is not None and primary.is_classifier:
                    correct += int(np.count_nonzero(ref[primary.name].argmax(-1) == labels))
                    labelled += len(labels)
                for row in rows:
                    row.step(feeds, ref, labels)
                bar.update(len(next(iter(feeds.values()))))
    finally:
        bar.close()
        for row in rows:
            if row.runner is not None and not row.runner.is_loaded:
                row.runner = None
    ref_acc = correct / labelled if labelled else None
    return [r.to_dict(source.evidence) for r in rows], ref_acc


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
    """A fixed-width text table of the report, one row per backend x precision x device."""
    if report.get("task") == "text-generation":
        from .lm_check import format_verify_table

        return format_verify_table(report)
    head = (
        f"{'backend':<12} {'device':<8} {'precision':<9} {'max abs':>9} {'max rel':>9} {'agree %':>8} "
        f"{'acc %':>7}  result"
    )
    data = report["data"]
    ref = report["reference"]
    acc = "" if ref.get("accuracy") is None else f"; PyTorch accuracy {ref['accuracy'] * 100:.2f}%"
    lines = [
        f"verify {safe_text(report['bundle'])} on {data['n']} samples ({data.get('kind')}, {data['evidence']}){acc}"
    ]
    lines += [f"WARNING: {safe_text(w)}" for w in report.get("warnings", [])]
    lines += [head, "-" * len(head)]
    for r in report["rows"]:
        agree = None if r["agreement"] is None else r["agreement"] * 100
        a = None if r["accuracy"] is None else r["accuracy"] * 100
        result = "PASS" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(
            f"{r['backend']:<12} {r['device']:<8} {r['precision']:<9} {_fmt(r['max_abs'], '9.2e')} "
            f"{_fmt(r['max_rel'], '9.2e')} {_fmt(agree, '8.2f')} {_fmt(a, '7.2f')}  {safe_text(result)}"
        )
        if len(r.get("outputs") or {}) > 1:
            for name, o in r["outputs"].items():
                ag = "" if o.get("agreement") is None else f", agreement {o['agreement'] * 100:.2f}%"
                lines.append(
                    f"{'':<12} output {safe_text(name)} ({o['kind']}): max abs {o['max_abs']:.2e}{ag}"
                )
    for s in report["skipped"]:
        prec = " " + s["precision"] if s["precision"] else ""
        lines.append(f"skipped {s['backend']}:{s['device']}{prec}: {safe_text(s['reason'])}")
    lines.append("all passed" if report["passed"] else "FAILED")
    return "\n".join(lines)


def print_table(report: dict, file=None) -> None:
    print(format_table(report), file=file or sys.stdout)
