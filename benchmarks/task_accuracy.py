"""Any task, measured: the task models of edgeport's zoo, trained here on their generated labelled sets,
exported with --int8 to every format, then verified on their validation sets.

For each model it runs the three commands a user would (``edgeport train``, ``edgeport export --run
RUN --int8`` calibrated on the training set and judged on the validation set, ``edgeport verify``),
then prints per format and precision the task's metrics from verify, the worst fp32 error at the
dynamic dims' min, middle and max (from the manifest's parity records), and each target of issue
"any task" as met or missed:

- shapes-detector: int8 mAP@0.5 drop <= 1.0 point and matched recall >= 0.95 on every format;
- shapes-segmenter: int8 mIoU drop <= 1.0 point on every format;
- text-tagger (dynamic seq 4..128): int8 token agreement >= 99% on every format;
- every model: fp32 within 1e-4 of PyTorch (max abs) at every checked dim point.

Usage: python benchmarks/task_accuracy.py [--work DIR] [--models shapes-detector,shapes-segmenter,text-tagger]
       [--samples N] [--epochs N]   (defaults: each model's own training recipe)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EDGEPORT = str(Path(sys.executable).with_name("edgeport"))
# model -> (int8 targets: metric, "min"|"max", threshold), extra export options
TARGETS = {
    "shapes-detector": [("map50_drop", "max", 0.01), ("matched_recall", "min", 0.95)],
    "shapes-segmenter": [("miou_drop", "max", 0.01)],
    "text-tagger": [("token_agreement", "min", 0.99)],
    "kws-tones": [("agreement", "min", 0.99)],
    "tones-embedder": [("cosine_min", "min", 0.95)],
}
FP32_ATOL = 1e-4


def run(*argv: str) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    res = subprocess.run([EDGEPORT, *argv], capture_output=True, text=True)
    print(f"  edgeport {argv[0]}: exit {res.returncode} in {time.perf_counter() - t0:.0f} s", flush=True)
    if res.returncode not in (0, 3):
        print(res.stderr[-3000:])
    return res


def data_specs(run_dir: Path) -> dict:
    """train.json's --data strings (relative to the run folder) as absolute ones."""
    info = json.loads((run_dir / "train.json").read_text())
    out = {}
    for k, spec in info["data"].items():
        kind, _, path = spec.partition(":")
        out[k] = f"{kind}:{run_dir / path}"
    return out | {"val_metrics": info["val_metrics"], "train_seconds": info["train_seconds"]}


def one(model: str, work: Path, samples: int | None, epochs: int | None) -> dict:
    run_dir, bundle, vjson = work / model, work / f"{model}-bundle", work / f"{model}-verify.json"
    train = ["train", "--model", model, "--out", str(run_dir), "--force", "--quiet"]
    train += ["--samples", str(samples)] if samples else []
    train += ["--epochs", str(epochs)] if epochs else []
    res = run(*train)
    if res.returncode != 0:
        return {"model": model, "error": f"train failed: {res.stderr.strip()[-300:]}"}
    d = data_specs(run_dir)
    t0 = time.perf_counter()
    exp = run("export", "--run", str(run_dir), "--int8", "--calibration-data", d["train"],
              "--eval-data", d["val"], "--out", str(bundle), "--force", "--quiet")  # fmt: skip
    export_s = time.perf_counter() - t0
    if exp.returncode not in (0, 3):
        return {"model": model, "error": f"export failed: {exp.stderr.strip()[-300:]}"}
    # this process wrote the bundle, so its TorchScript archives may be loaded (the trust rule)
    ver = run(
        "verify",
        str(bundle),
        "--data",
        d["val"],
        "--quiet",
        "--trust-model-code",
        "--out",
        str(vjson),
        "--force",
    )
    report = json.loads(vjson.read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    rows = []
    for r in report["rows"]:
        m = r.get("metrics") or {}
        rows.append(
            {
                "format": r["format"],
                "backend": r["backend"],
                "device": r["device"],
                "precision": r["precision"],
                "passed": r["passed"],
                "max_abs": r.get("max_abs"),
                "metrics": m,
                "reasons": r.get("reasons", []),
            }
        )
    # fp32 parity at every checked batch size and dim point, as export recorded it
    worst = {}  # fp32 artifact -> worst max abs over every batch size and dim point export checked
    for name, a in ((manifest.get("parity") or {}).get("artifacts") or {}).items():
        fmt, _, prec = name.partition("/")
        if prec != "fp32":
            continue
        for row in [*a.get("batch_sizes", {}).values(), *a.get("dims", {}).values()]:
            if row.get("max_abs") is not None:
                worst[fmt] = max(worst.get(fmt, 0.0), float(row["max_abs"]))
    dims = {k: v for k, v in (manifest.get("dims") or {}).items() if k != "batch"}
    return {
        "model": model,
        "task": (manifest.get("task") or {}).get("name"),
        "train_seconds": d["train_seconds"],
        "val_metrics_pytorch": d["val_metrics"],
        "export_seconds": export_s,
        "export_exit": exp.returncode,
        "verify_exit": ver.returncode,
        "failures": manifest.get("failures", []),
        "dims": dims,
        "fp32_worst_max_abs": worst,
        "reference": report.get("reference", {}).get("metrics"),
        "rows": rows,
    }


def judge(r: dict) -> list[tuple[str, bool]]:
    out = []
    for fmt, v in r["fp32_worst_max_abs"].items():
        out.append((f"fp32 {fmt} max abs {v:.2e} <= {FP32_ATOL:g} at every checked point", v <= FP32_ATOL))
    int8 = [row for row in r["rows"] if row["precision"] == "int8"]
    formats = {row["format"] for row in r["rows"] if row["precision"] == "fp32" and row["format"] != "torch"}
    missing = sorted(formats - {row["format"] for row in int8})
    if missing:
        out.append((f"int8 on every format (missing: {', '.join(missing)})", False))
    for metric, how, thr in TARGETS.get(r["model"], []):
        for row in int8:
            v = row["metrics"].get(metric)
            ok = v is not None and (v <= thr if how == "max" else v >= thr)
            shown = "-" if v is None else f"{v:.4f}"
            out.append(
                (
                    f"int8 {row['backend']}:{row['device']} {metric} {shown} {'<=' if how == 'max' else '>='} {thr}",
                    ok,
                )
            )
    out.append(("every verify row passed", all(row["passed"] for row in r["rows"])))
    return out


def show(r: dict) -> None:
    print(f"\n== {r['model']} ({r.get('task')})")
    if "error" in r:
        print(f"  ERROR: {r['error']}")
        return
    ref = r.get("reference") or {}
    print(f"  trained in {r['train_seconds']:.0f} s; PyTorch on val: "
          + ", ".join(f"{k}={v:.4f}" for k, v in ref.items() if isinstance(v, float)))  # fmt: skip
    if r["dims"]:
        print(f"  dynamic dims: {json.dumps(r['dims'])}")
    print(
        f"  export --int8: {r['export_seconds']:.0f} s, exit {r['export_exit']}; verify exit {r['verify_exit']}"
    )
    for f in r["failures"]:
        print(f"  NOT IN BUNDLE: {f['format']}/{f['precision']} at {f['stage']}: {f['reason'][:160]}")
    keys = sorted({k for row in r["rows"] for k, v in row["metrics"].items() if isinstance(v, float)})
    keys = [k for k in keys if not k.startswith("ref_")][:7]
    print(
        f"  {'backend':<12} {'prec':<5} {'max abs':>9} "
        + " ".join(f"{k[:14]:>14}" for k in keys)
        + "  result"
    )
    for row in r["rows"]:
        vals = " ".join(
            f"{row['metrics'][k]:>14.4f}" if isinstance(row["metrics"].get(k), float) else f"{'-':>14}"
            for k in keys
        )
        mabs = "-" if row["max_abs"] is None else f"{row['max_abs']:.2e}"
        res = "PASS" if row["passed"] else "FAIL: " + "; ".join(row["reasons"])[:80]
        print(f"  {row['backend']:<12} {row['device']:<6} {row['precision']:<5} {mabs:>9} {vals}  {res}")
    for text, ok in judge(r):
        print(f"  [{'met' if ok else 'MISSED'}] {text}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=None, help="work folder (kept; default: a temp folder)")
    ap.add_argument("--models", default="shapes-detector,shapes-segmenter,text-tagger",
                    help=f"comma list of: {', '.join(TARGETS)}")  # fmt: skip
    ap.add_argument(
        "--samples", type=int, default=None, help="training samples (default: the model's recipe)"
    )
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's recipe)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="task-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    results, missed = [], 0
    for model in args.models.split(","):
        print(f"== {model} (work {work})", flush=True)
        r = one(model, work, args.samples, args.epochs)
        results.append(r)
        show(r)
        missed += sum(1 for _, ok in judge(r) if not ok) if "error" not in r else 1
    (work / "task_accuracy.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\n{missed} target(s) missed -> {work / 'task_accuracy.json'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
