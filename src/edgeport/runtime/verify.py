"""Verify every backend x precision x device against the PyTorch reference.

On the whole test set (10,000 MNIST images by default): max abs / rel error,
top-1 agreement, accuracy, and pass/fail under the precision's tolerance from
:mod:`edgeport.runtime.parity`.  Takes arrays (``data=``), so it needs neither
torchvision nor the data module; :func:`load_test_set` reads MNIST when asked.
The reference itself needs torch (the ``torch`` backend).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import DataError, EdgeportError, ParityError
from .benchmark import progress_bar
from .parity import compare, tolerance_for
from .plan import environment, open_bundle, select_runs
from .registry import BACKEND_FORMAT

SCHEMA = "edgeport.verify/1"
REFERENCE = ("torch", "fp32", "cpu")


def load_test_set(data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test images (uint8 ``[10000,28,28]``) and labels, via :func:`edgeport.data.load_mnist`."""
    from ..data import load_mnist

    d = load_mnist(data_dir)
    return d.test_images, d.test_labels


def run_all(runner, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([runner.run(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _check_data(data) -> tuple[np.ndarray, np.ndarray]:
    try:
        images, labels = data
    except (TypeError, ValueError):
        raise DataError("data must be a pair (uint8 images [N,28,28], labels [N])") from None
    images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
    if len(images) == 0 or len(images) != len(labels):
        raise DataError(
            f"data holds {len(images)} images and {len(labels)} labels; expected the same number >= 1"
        )
    return images, labels


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
    batch_size: int = 1000,
    progress: bool = True,
) -> dict:
    """Compare every selected runner with PyTorch on ``data`` (default: the MNIST test set).

    ``atol`` overrides the elementwise tolerance of fp32/fp16; ``max_accuracy_drop``
    (a fraction: 0.002 = 0.2 points) that of fp16/int8.  Returns the report dict;
    ``report["passed"]`` is False when any row failed (see :func:`raise_if_failed`).
    """
    bundle = open_bundle(bundle_or_path)
    runs, skipped = select_runs(bundle, backends=backends, precisions=precisions, devices=devices)
    if data is None:
        images, labels = load_test_set(data_dir)
        source = f"MNIST test split ({data_dir or 'default root'})"
    else:
        images, labels = _check_data(data)
        source = "caller-supplied arrays"
    x = bundle.preprocessing.apply(images)
    x = np.ascontiguousarray(x.reshape((len(x), *bundle.input_shape)))
    bar = progress_bar(len(runs) + 1, progress, "verify")
    try:
        bar.set_description("verify: torch reference")
        with bundle.runner(
            *REFERENCE[:1], precision=REFERENCE[1], device=REFERENCE[2], max_batch=batch_size
        ) as r:
            ref = run_all(r, x, batch_size)
        bar.update(1)
        ref_accuracy = float(np.mean(ref.argmax(1) == labels))
        rows = []
        for backend, precision, device in runs:
            bar.set_description(f"verify: {backend}:{device} {precision}")
            rows.append(
                _verify_one(
                    bundle,
                    backend,
                    precision,
                    device,
                    x,
                    ref,
                    labels,
                    batch_size,
                    atol=atol,
                    max_accuracy_drop=max_accuracy_drop,
                )
            )
            bar.update(1)
    finally:
        bar.close()
    return {
        "schema": SCHEMA,
        "bundle": str(getattr(bundle, "path", "")),
        "model": getattr(bundle.manifest, "model", None),
        "data": {"source": source, "n": int(len(x))},
        "reference": {
            "backend": REFERENCE[0],
            "precision": REFERENCE[1],
            "device": REFERENCE[2],
            "accuracy": ref_accuracy,
        },
        "rows": rows,
        "skipped": skipped,
        "passed": all(r["passed"] for r in rows),
        "environment": environment(sorted({r[0] for r in runs} | {REFERENCE[0]})),
    }


def _verify_one(
    bundle, backend, precision, device, x, ref, labels, batch_size, *, atol, max_accuracy_drop
) -> dict:
    fmt = BACKEND_FORMAT[backend]
    tol = tolerance_for(precision, atol=atol, max_accuracy_drop=max_accuracy_drop)
    name = f"{fmt}/{precision} on {backend}:{device}"
    t0 = time.perf_counter()
    try:
        with bundle.runner(backend, precision, device, max_batch=batch_size) as runner:
            out = run_all(runner, x, batch_size)
    except EdgeportError as exc:
        return {
            "backend": backend,
            "device": device,
            "format": fmt,
            "precision": precision,
            "n": int(len(x)),
            "max_abs": None,
            "max_rel": None,
            "agreement": None,
            "accuracy": None,
            "ref_accuracy": None,
            "accuracy_drop": None,
            "passed": False,
            "reasons": [f"could not run: {exc}"],
            "tolerance": asdict(tol),
            "seconds": time.perf_counter() - t0,
        }
    res = compare(name, ref, out, precision, labels=labels, tolerance=tol)
    return {
        "backend": backend,
        "device": device,
        "format": fmt,
        "precision": precision,
        "n": res.n,
        "max_abs": res.max_abs,
        "max_rel": res.max_rel,
        "agreement": res.agreement,
        "accuracy": res.accuracy,
        "ref_accuracy": res.ref_accuracy,
        "accuracy_drop": (res.ref_accuracy - res.accuracy) if res.accuracy is not None else None,
        "passed": res.passed,
        "reasons": list(res.reasons),
        "tolerance": asdict(tol),
        "seconds": time.perf_counter() - t0,
    }


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
    head = f"{'backend':<12} {'device':<8} {'precision':<9} {'max abs':>9} {'max rel':>9} {'agree %':>8} {'acc %':>7}  result"
    lines = [
        f"verify {report['bundle']} on {report['data']['n']} images ({report['data']['source']}); "
        f"PyTorch accuracy {report['reference']['accuracy'] * 100:.2f}%",
        head,
        "-" * len(head),
    ]
    for r in report["rows"]:
        agree = None if r["agreement"] is None else r["agreement"] * 100
        acc = None if r["accuracy"] is None else r["accuracy"] * 100
        result = "PASS" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(
            f"{r['backend']:<12} {r['device']:<8} {r['precision']:<9} {_fmt(r['max_abs'], '9.2e')} "
            f"{_fmt(r['max_rel'], '9.2e')} {_fmt(agree, '8.2f')} {_fmt(acc, '7.2f')}  {result}"
        )
    for s in report["skipped"]:
        lines.append(
            f"skipped {s['backend']}:{s['device']}{' ' + s['precision'] if s['precision'] else ''}: {s['reason']}"
        )
    lines.append("all passed" if report["passed"] else "FAILED")
    return "\n".join(lines)


def print_table(report: dict, file=None) -> None:
    print(format_table(report), file=file or sys.stdout)


def write_json(report: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path
