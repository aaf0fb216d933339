"""ResNet18 with random weights (BatchNorm statistics re-estimated on the calibration data), calibrated
and verified on an image folder, then measured against raw runtime loops in the same run.

Prints, per backend:
  - edgeport bench batch-1 p50 vs a raw ``InferenceSession.run`` loop / an OpenVINO infer request
    on the same inputs (target <= 1.10x);
  - batch-32 throughput vs the raw loop (target >= 0.95x);
  - int8 batch-32 throughput vs fp32 on the same backend (targets here: OpenVINO >= 1.5x,
    ONNX Runtime >= 1.0x), for every backend in the bundle.

Usage: python benchmarks/real_models.py --data-dir MNIST [--formats onnx,openvino,torchscript,executorch]
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


def raw_call(bundle, backend: str, x: np.ndarray, threads: int):
    if backend == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(
            bundle.read_verified(bundle.artifact("onnx", PREC[0])), so, providers=["CPUExecutionProvider"]
        )
        return lambda: sess.run(None, {"input": x})
    import openvino as ov

    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if PREC[0] == "fp32":
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = ov.Core().compile_model(str(bundle.path_of(bundle.artifact("openvino", PREC[0]))), "CPU", cfg)
    req = compiled.create_infer_request()
    return lambda: req.infer({"input": x})


PREC = ["fp32"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"), help="MNIST root (for the photos)"
    )
    ap.add_argument("--formats", default="onnx,openvino,torchscript,executorch")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--per-class", type=int, default=50, help="photos per class (calibration takes 300)")
    args = ap.parse_args(argv)
    from edgeport.export.api import export
    from edgeport.sources.mnist import load_mnist

    tmp = Path(tempfile.mkdtemp(prefix="edgeport-real-"))
    try:
        d = load_mnist(args.data_dir)
        n = write_folder(tmp / "photos", d.test_images, d.test_labels, args.per_class, 3)
        t0 = time.perf_counter()
        b = export(
            model_ref="torchvision:resnet18",
            random_init=True,
            model_args={"num_classes": 10},
            input_shape=(1, 3, 224, 224),
            data=f"imagefolder:{tmp / 'photos'}",
            out=tmp / "b",
            labels=[str(i) for i in range(10)],
            config=ExportConfig(
                formats=tuple(args.formats.split(",")), int8=True, parity_samples=64, golden_samples=16
            ),
            calibration=CalibrationConfig(size=300, selection_size=150, speed_seconds=1.0),
            progress=True,
        )
        print(
            f"\nexported ResNet18 (random weights, BatchNorm re-estimated on {n} photos' calibration split) "
            f"in {time.perf_counter() - t0:.0f} s"
        )
        for a in b.artifacts:
            if a.precision == "int8":
                dd = a.details
                print(
                    f"  {a.key}: selected {dd['selected']} ({dd['selection_rule']}); export-time speed "
                    f"{dd['speedup_vs_fp32']:.2f}x fp32 at batch {dd['speed_batch']}"
                )
        cfg = BenchConfig(batch_sizes=(1, 32), warmup_seconds=0.5, min_iters=5, min_seconds=args.seconds)
        report = bench(b, devices=["cpu"], config=cfg, progress=False)
        rows = {(r["backend"], r["precision"], r["batch_size"]): r for r in report["rows"]}
        print("\nbackend      prec   b1 p50 edgeport / raw        b32 throughput edgeport / raw")
        for backend in ("onnxruntime", "openvino"):
            for prec in ("fp32", "int8"):
                if (backend, prec, 1) not in rows:
                    continue
                PREC[0] = prec
                rng = np.random.default_rng(0)
                x1 = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
                x32 = rng.standard_normal((32, 3, 224, 224)).astype(np.float32)
                p1, _ = raw_p50_and_throughput(
                    raw_call(b, backend, x1, rows[(backend, prec, 1)]["threads"]), 1, args.seconds
                )
                _, t32 = raw_p50_and_throughput(
                    raw_call(b, backend, x32, rows[(backend, prec, 32)]["threads"]), 32, args.seconds
                )
                e1 = rows[(backend, prec, 1)]["latency_us"]["p50"]
                e32 = rows[(backend, prec, 32)]["throughput_per_s"]
                print(
                    f"{backend:<12} {prec:<5} {e1 / 1e3:7.2f} / {p1 / 1e3:7.2f} ms = {e1 / p1:.2f}x (<= 1.10)   "
                    f"{e32:7.1f} / {t32:7.1f} /s = {e32 / t32:.2f}x (>= 0.95)"
                )
        print("\nint8 vs fp32, batch-32 throughput (edgeport bench):")
        for backend in ("onnxruntime", "openvino", "torchscript", "executorch"):
            f, i = rows.get((backend, "fp32", 32)), rows.get((backend, "int8", 32))
            if f and i:
                print(
                    f"  {backend:<12} fp32 {f['throughput_per_s']:7.1f}/s  int8 {i['throughput_per_s']:7.1f}/s  "
                    f"= {i['throughput_per_s'] / f['throughput_per_s']:.2f}x"
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
