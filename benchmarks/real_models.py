"""ResNet18 with random weights (BatchNorm statistics re-estimated on the calibration data), calibrated
and verified on an image folder, then measured against raw runtime loops in the same run.

Prints, per backend:
  - edgeport bench batch-1 p50 vs a raw ``InferenceSession.run`` loop / an OpenVINO infer request
    on the same inputs (target <= 1.10x);
  - batch-32 throughput vs the raw loop (target >= 0.95x);
  - int8 batch-32 throughput vs fp32 on the same backend (targets here: OpenVINO >= 1.5x,
    ONNX Runtime >= 1.0x), for every backend in the bundle.

Usage: python benchmarks/real_models.py --data-dir MNIST [--formats onnx,openvino,torchscript,executorch]
       [--keep DIR | --bundle DIR] [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rgb_pipeline import write_folder  # noqa: E402

from edgeport.config import BenchConfig, CalibrationConfig, ExportConfig  # noqa: E402
from edgeport.runtime.benchmark import bench  # noqa: E402


def raw_p50_and_throughput(call, batch: int, seconds: float) -> tuple[float, float]:
    for _ in range(3):
        call()
    ts = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(ts) < 5:
        t0 = time.perf_counter_ns()
        call()
        ts.append(time.perf_counter_ns() - t0)
    ts = np.asarray(ts, float)
    return float(np.median(ts)) / 1e3, batch * len(ts) / (ts.sum() / 1e9)


def raw_call(bundle, backend: str, prec: str, feeds: dict, threads: int):
    """The plainest loop body over the same runtime and artifact: ``InferenceSession.run`` or an
    OpenVINO infer request (same compile options as edgeport's runner)."""
    if backend == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(
            bundle.read_verified(bundle.artifact("onnx", prec)), so, providers=["CPUExecutionProvider"]
        )
        return lambda: sess.run(None, feeds)
    import openvino as ov

    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if prec == "fp32":
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = ov.Core().compile_model(str(bundle.path_of(bundle.artifact("openvino", prec))), "CPU", cfg)
    req = compiled.create_infer_request()
    return lambda: req.infer(feeds)


def interleaved(bundle, backend: str, prec: str, batch: int, seconds: float, rounds: int) -> dict:
    """edgeport's bench row and the raw loop, alternated ``rounds`` times on the same input; the
    best p50 and the best throughput of each are kept (a busy moment hurts both equally often)."""
    from edgeport.runtime.benchmark import bench_input, bench_runner
    from edgeport.runtime.registry import backend_class

    threads = backend_class(backend).default_threads_for(batch)
    runner = bundle.runner(backend, precision=prec, threads=threads).load()
    try:
        feeds = bench_input(runner, batch)
        raw = raw_call(bundle, backend, prec, {k: v.copy() for k, v in feeds.items()}, threads)
        cfg = BenchConfig(batch_sizes=(batch,), warmup_seconds=0.5, min_iters=5, min_seconds=seconds)
        ep, rw = [], []
        for _ in range(rounds):
            row = bench_runner(runner, batch, cfg)
            ep.append((row["latency_us"]["p50"], row["throughput_per_s"]))
            rw.append(raw_p50_and_throughput(raw, batch, seconds))
    finally:
        runner.close()
    return {
        "threads": threads,
        "edgeport_p50": min(p for p, _ in ep),
        "raw_p50": min(p for p, _ in rw),
        "edgeport_tp": max(t for _, t in ep),
        "raw_tp": max(t for _, t in rw),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"), help="MNIST root (for the photos)"
    )
    ap.add_argument("--formats", default="onnx,openvino,torchscript,executorch")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds, edgeport vs raw (default 3)")
    ap.add_argument("--per-class", type=int, default=50, help="photos per class (calibration takes 300)")
    ap.add_argument("--keep", default=None, help="keep the exported bundle in this folder")
    ap.add_argument("--bundle", default=None, help="measure this bundle (from --keep) instead of exporting")
    args = ap.parse_args(argv)
    from edgeport.bundle import load_bundle
    from edgeport.export.api import export
    from edgeport.sources.mnist import load_mnist

    tmp = Path(tempfile.mkdtemp(prefix="edgeport-real-"))
    try:
        if args.bundle:
            b = load_bundle(args.bundle)
        else:
            d = load_mnist(args.data_dir)
            n = write_folder(tmp / "photos", d.test_images, d.test_labels, args.per_class, 3)
            t0 = time.perf_counter()
            b = export(
                model_ref="torchvision:resnet18",
                random_init=True,
                model_args={"num_classes": 10},
                input_shape=(1, 3, 224, 224),
                data=f"imagefolder:{tmp / 'photos'}",
                out=Path(args.keep) if args.keep else tmp / "b",
                labels=[str(i) for i in range(10)],
                config=ExportConfig(
                    formats=tuple(args.formats.split(",")), int8=True, parity_samples=64, golden_samples=16
                ),
                calibration=CalibrationConfig(size=300, selection_size=150, speed_seconds=1.0),
                progress=True,
            )
            print(
                f"\nexported ResNet18 (random weights, BatchNorm re-estimated on {n} photos' calibration "
                f"split) in {time.perf_counter() - t0:.0f} s"
            )
        for a in b.artifacts:
            if a.precision == "int8":
                dd = a.details
                print(
                    f"  {a.key}: selected {dd['selected']} ({dd['selection_rule']}); export-time speed "
                    f"{dd['speedup_vs_fp32']:.2f}x fp32 at batch {dd['speed_batch']}"
                )
        print(
            f"\nedgeport bench rows vs the raw loop, alternated {args.rounds}x on the same input "
            f"({args.seconds:g} s each; best of each kept)"
        )
        print("backend      prec   b1 p50 edgeport / raw              b32 throughput edgeport / raw")
        for backend in ("onnxruntime", "openvino"):
            for prec in ("fp32", "int8"):
                if not b.has({"onnxruntime": "onnx"}.get(backend, backend), prec):
                    continue
                r1 = interleaved(b, backend, prec, 1, args.seconds, args.rounds)
                r32 = interleaved(b, backend, prec, 32, args.seconds, args.rounds)
                e1, p1 = r1["edgeport_p50"], r1["raw_p50"]
                e32, t32 = r32["edgeport_tp"], r32["raw_tp"]
                ok1 = "ok" if e1 / p1 <= 1.10 else "MISSED"
                ok32 = "ok" if e32 / t32 >= 0.95 else "MISSED"
                print(
                    f"{backend:<12} {prec:<5} {e1 / 1e3:7.2f} / {p1 / 1e3:7.2f} ms = {e1 / p1:.2f}x (<= 1.10 {ok1})   "
                    f"{e32:7.1f} / {t32:7.1f} /s = {e32 / t32:.2f}x (>= 0.95 {ok32})   "
                    f"threads {r1['threads']}/{r32['threads']}"
                )
        cfg = BenchConfig(batch_sizes=(32,), warmup_seconds=0.5, min_iters=5, min_seconds=args.seconds)
        report = bench(b, devices=["cpu"], config=cfg, progress=False)
        rows = {(r["backend"], r["precision"], r["batch_size"]): r for r in report["rows"]}
        print("\nint8 vs fp32, batch-32 throughput (edgeport bench, one run):")
        for backend in ("onnxruntime", "openvino", "torchscript", "executorch"):
            f, i = rows.get((backend, "fp32", 32)), rows.get((backend, "int8", 32))
            if f and i:
                target = {"openvino": " (target >= 1.5x)", "onnxruntime": " (target >= 1.0x)"}.get(
                    backend, ""
                )
                print(
                    f"  {backend:<12} fp32 {f['throughput_per_s']:7.1f}/s  int8 {i['throughput_per_s']:7.1f}/s  "
                    f"= {i['throughput_per_s'] / f['throughput_per_s']:.2f}x{target}"
                )
        for s in report["skipped"]:
            print(f"  (skipped {s['backend']}:{s['device']} {s.get('precision') or ''}: {s['reason'][:100]})")
        flags = report["device"]["cpu"]["flags"]
        print(f"\nCPU: {report['device']['cpu']['model']}, flags {', '.join(flags)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
