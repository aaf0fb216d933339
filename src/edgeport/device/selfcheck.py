"""``edgeport selfcheck``: every artifact this host can run, against the golden I/O stored in the bundle.

torch-free and data-free: the bundle carries real inputs and their fp32
PyTorch outputs (hashed like every file), so a device with the light install
checks itself with the same tolerance table as ``verify``:

- fp32 (and fp16): within tolerance, and the task's gates (100% top-1 agreement for a classifier);
- int8: the task's metrics (agreement, matched boxes, mIoU, cosine...) at least what the
  artifact reached on the same golden inputs at export, less the margin recorded in the
  manifest (int8 rounding differs a little between CPUs).
"""

from __future__ import annotations

import sys

from ..errors import BundleError, EdgeportError, safe_text
from ..runtime.parity import ParityAccumulator, criteria_for, golden_edge_rows
from ..runtime.plan import environment, open_bundle, select_runs
from ..runtime.registry import BACKEND_FORMAT

SCHEMA = "edgeport.selfcheck/1"


def _batches(feeds: dict, size: int):
    n = len(next(iter(feeds.values())))
    for a in range(0, n, size):
        yield a, min(n, a + size)


def selfcheck(
    bundle_or_path, *, backends=None, precisions=None, devices=None, progress: bool = False
) -> dict:
    bundle = open_bundle(bundle_or_path)
    if getattr(bundle.manifest, "generation", None):  # text-generation bundle: golden prompts and tokens
        from ..runtime.lm_check import selfcheck_lm

        return selfcheck_lm(bundle, backends=backends, precisions=precisions, devices=devices)
    golden = bundle.golden()
    if golden is None:
        raise BundleError(
            f"bundle {bundle.path} carries no golden I/O (it was made by an older edgeport); re-export it to selfcheck"
        )
    inputs, ref = golden
    g = bundle.manifest.golden
    runs, skipped = select_runs(
        bundle, backends=backends, precisions=precisions, devices=devices, exclude=("torch",)
    )
    margin = float(g.get("margin", 0.03))
    rows = [_check(bundle, b, p, d, inputs, ref, g, margin) for b, p, d in runs]
    return {
        "schema": SCHEMA,
        "bundle": str(bundle.path),
        "model": bundle.manifest.model,
        "task": bundle.task.name,
        "warnings": bundle.warnings,
        "golden": {"n": g["n"], "source": g.get("source"), "evidence": g.get("evidence"), "margin": margin},
        "rows": rows,
        "skipped": skipped,
        "passed": bool(rows) and all(r["passed"] for r in rows),
        "device": environment(sorted({r[0] for r in runs})),
    }


def expected_gates(bundle, key: str, margin: float) -> dict:
    """int8: the task metrics the artifact reached on these golden inputs at export, loosened by ``margin``
    (int8 rounding differs a little between CPUs)."""
    g = bundle.manifest.golden or {}
    found = dict((g.get("int8_metrics") or {}).get(key) or {})
    if not found and key in (g.get("int8_agreement") or {}):  # bundles from edgeport 0.2
        found = {"agreement": g["int8_agreement"][key]}
    table = bundle.task.gate_table()
    out = {}
    for metric, v in found.items():
        gate = table.get(metric)
        if gate is None or v is None:
            continue
        out[f"int8.{metric}"] = (
            max(0.0, v - margin) if gate.direction == "min" else v + margin * max(1.0, abs(v))
        )
    return out


def _check(bundle, backend, precision, device, inputs, ref, g, margin) -> dict:
    from ..runtime.verify import gate_overrides

    fmt = BACKEND_FORMAT[backend]
    key = f"{fmt}/{precision}"
    expected = expected_gates(bundle, key, margin) if precision == "int8" else {}
    crit = criteria_for(bundle.task, precision, backend, gates=gate_overrides(bundle) | expected)
    acc = ParityAccumulator(
        bundle.signature, crit, f"{key} on {backend}:{device}", precision, task=bundle.task
    )
    row = {
        "backend": backend,
        "device": device,
        "format": fmt,
        "precision": precision,
        "n": 0,
        "task": bundle.task.name,
        "gates": crit.gates,
        "expected_agreement": (g.get("int8_agreement") or {}).get(key),
        "min_agreement": crit.gates.get("agreement"),
    }
    try:
        with bundle.runner(backend, precision, device) as runner:
            size = min(64, runner.max_batch)
            edge = golden_edge_rows(g, len(next(iter(inputs.values()))))
            for a, b in _batches(inputs, size):
                out = runner.run({k: v[a:b] for k, v in inputs.items()})
                acc.update({k: v[a:b] for k, v in ref.items()}, out, edge=edge[a:b])
    except EdgeportError as exc:
        return row | {
            "passed": False,
            "reasons": [f"could not run: {exc}"],
            "max_abs": None,
            "agreement": None,
            "metrics": {},
        }
    res = acc.result()
    reasons = list(res.reasons) or (
        [] if res.n else ["the golden files hold no samples: nothing was checked"]
    )
    return row | {
        "n": res.n,
        "max_abs": res.max_abs,
        "agreement": res.agreement,
        "metrics": res.metrics,
        "checks": list(res.checks),
        "outputs": res.outputs,
        "passed": not reasons,
        "reasons": reasons,
    }


def format_table(report: dict) -> str:
    g = report["golden"]
    lines = [
        f"selfcheck {safe_text(report['bundle'])} on {g['n']} golden samples ({safe_text(g.get('source') or '')})"
    ]
    lines += [f"WARNING: {safe_text(w)}" for w in report.get("warnings", [])]
    from ..tasks import registry

    task = registry.task_class(report.get("task") or "classify")
    head = f"{'artifact':<18} {'backend:device':<22} {'max abs':>9}  {'task metrics':<40} result"
    lines += [head, "-" * len(head)]
    for r in report["rows"]:
        mx = "-" if r.get("max_abs") is None else f"{r['max_abs']:.2e}"
        metrics = task.summary_of(r.get("metrics") or {})
        result = "PASS" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(
            f"{r['format'] + '/' + r['precision']:<18} {r['backend'] + ':' + r['device']:<22} {mx:>9}  "
            f"{metrics:<40} {safe_text(result)}"
        )
    for s in report["skipped"]:
        prec = " " + s["precision"] if s["precision"] else ""
        lines.append(f"skipped {s['backend']}:{s['device']}{prec}: {safe_text(s['reason'])}")
    lines.append("all passed" if report["passed"] else "FAILED")
    return "\n".join(lines)


def print_table(report: dict, file=None) -> None:
    print(format_table(report), file=file or sys.stdout)


def raise_if_failed(report: dict) -> None:
    from ..errors import ParityError

    failed = [r for r in report["rows"] if not r["passed"]]
    if failed or not report["rows"]:
        names = ", ".join(f"{r['format']}/{r['precision']} on {r['backend']}:{r['device']}" for r in failed)
        raise ParityError(
            f"selfcheck failed for {len(failed)} of {len(report['rows'])} artifacts: {names}", failed
        )


__all__ = ["selfcheck", "format_table", "print_table", "raise_if_failed"]
