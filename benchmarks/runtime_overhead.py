"""edgeport's runtime overhead, side by side with hand-written loops, in one process.

Prints, for each model (the seed MLP, ResNet18 with random weights at 224x224, and a
two-input two-output model):

  - per backend, edgeport's batch-1 p50 (runtime.benchmark, the code `edgeport bench`
    runs) vs a minimal hand-written loop over the same runtime's fastest Python API on
    the same artifact and inputs (targets: <= 1.10x; ExecuTorch <= 1.15x vs a plain
    ``method.execute`` loop);
  - for the seed MLP: the four formats side by side, fp32 and int8, at batch 1 and at the
    largest batch every format allows (64: the .pte plans memory for 64), the best
    batch-1 p50, the best fp32 throughput vs the machine's roofline, and OpenVINO vs
    ``benchmark_app -hint latency``.

Usage: python benchmarks/runtime_overhead.py [--data-dir MNIST] [--seconds 1] [--rounds 3]
       [--models seed,resnet18,two-input]
Timing on a shared machine is noisy: rounds alternate edgeport and the hand loop and
the best p50 of each is kept.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # user_models.py (the two-input model)

from edgeport.config import BenchConfig, CalibrationConfig, ExportConfig  # noqa: E402
from edgeport.runtime.benchmark import bench, bench_input, bench_runner, sgemm_gflops  # noqa: E402
from edgeport.runtime.registry import backend_class  # noqa: E402

FLOP_PER_SAMPLE = 2 * (784 * 96 + 96 * 256 + 256 * 10)  # 204,800 for mnist-mlp
BACKENDS = ("torch", "torchscript", "onnxruntime", "openvino", "executorch")


def hand_loop(call, seconds: float, warmup: float = 0.3) -> float:
    """p50 (us) of the plainest loop: perf_counter_ns around each call."""
    clock = time.perf_counter_ns
    end = clock() + int(warmup * 1e9)
    while clock() < end:
        call()
    ts = []
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        call()
        t1 = clock()
        ts.append(t1 - t0)
        if t1 > end and len(ts) >= 20:
            break
    return float(np.median(ts)) / 1e3


# ------------------------------------------------------------------ hand-written loops, one per runtime


def hand_onnxruntime(bundle, feeds, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(
        bundle.read_verified(bundle.artifact("onnx")), so, providers=["CPUExecutionProvider"]
    )
    outs = sess.run(None, feeds)
    b = sess.io_binding()
    keep = []
    for name, x in feeds.items():
        v = ort.OrtValue.ortvalue_from_numpy(x, "cpu", 0)
        b.bind_ortvalue_input(name, v)
        keep.append(v)
    for o, y in zip(sess.get_outputs(), outs, strict=True):
        v = ort.OrtValue.ortvalue_from_shape_and_type(list(y.shape), y.dtype, "cpu", 0)
        b.bind_ortvalue_output(o.name, v)
        keep.append(v)
    return (lambda: sess.run_with_iobinding(b)), (sess, keep)


def hand_openvino(bundle, feeds, threads):
    import openvino as ov

    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = ov.Core().compile_model(str(bundle.path_of(bundle.artifact("openvino"))), "CPU", cfg)
    req = compiled.create_infer_request()
    for name, x in feeds.items():
        req.set_tensor(name, ov.Tensor(x, shared_memory=True))
    return req.infer, (compiled, feeds)


def _torch_call(module, feeds, names):
    import torch

    tensors = [torch.from_numpy(feeds[n]) for n in names]

    def call():
        with torch.inference_mode():
            module(*tensors)

    return call, (module, tensors)


def hand_torchscript(bundle, feeds, threads):
    import torch

    torch.set_num_threads(threads)
    m = torch.jit.load(str(bundle.path_of(bundle.artifact("torchscript")))).eval()
    return _torch_call(m, feeds, bundle.signature.input_names)


def hand_torch(bundle, feeds, threads):
    import torch

    from edgeport.export.api import load_reference_model

    torch.set_num_threads(threads)
    return _torch_call(load_reference_model(bundle), feeds, bundle.signature.input_names)


def hand_executorch(bundle, feeds, threads):
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime

    _unsafe_reset_threadpool(threads)
    program = Runtime.get().load_program(bundle.read_verified(bundle.artifact("executorch")))
    method = program.load_method("forward")  # the program must outlive the method
    tensors = [torch.from_numpy(feeds[n]) for n in bundle.signature.input_names]
    return (lambda: method.execute(tensors)), (program, method, tensors)


HAND = {
    "onnxruntime": hand_onnxruntime,
    "openvino": hand_openvino,
    "torchscript": hand_torchscript,
    "torch": hand_torch,
    "executorch": hand_executorch,
}


def overhead(bundle, title: str, seconds: float, rounds: int) -> dict:
    cfg = BenchConfig(batch_sizes=(1,), warmup_seconds=0.3, min_iters=20, min_seconds=seconds)
    print(f"\n== {title}: batch-1 p50, edgeport vs a hand-written loop on the same artifact and input ==")
    print(f"{'backend':<12} {'edgeport p50':>13} {'hand p50':>10} {'ratio':>7}  target")
    best = {}
    for backend in BACKENDS:
        fmt = {"onnxruntime": "onnx"}.get(backend, backend)
        if not bundle.has(fmt):
            continue
        threads = backend_class(backend).default_threads_for(1)
        runner = bundle.runner(backend, threads=threads).load()
        feeds = bench_input(runner, 1)
        call, _keep = HAND[backend](bundle, {k: v.copy() for k, v in feeds.items()}, threads)
        ep, hand = [], []
        for _ in range(rounds):
            ep.append(bench_runner(runner, 1, cfg)["latency_us"]["p50"])
            hand.append(hand_loop(call, seconds))
        runner.close()
        e, h = min(ep), min(hand)
        best[backend] = e
        target = 1.15 if backend == "executorch" else 1.10
        print(
            f"{backend:<12} {e:>10.1f} us {h:>7.1f} us {e / h:>7.2f}  <= {target:.2f} {'ok' if e / h <= target else 'MISSED'}"
            f"  (threads={threads})"
        )
    return best


# ------------------------------------------------------------------ the seed model's extra figures


def four_formats(bundle, seconds: float) -> None:
    cfg = BenchConfig(batch_sizes=(1, 64), warmup_seconds=0.2, min_iters=50, min_seconds=seconds)
    report = bench(bundle, devices=["cpu"], config=cfg, progress=False)
    rows = {(r["format"], r["precision"], r["batch_size"]): r for r in report["rows"]}
    print("\n== the seed MLP: four formats side by side (edgeport bench, cpu) ==")
    print(
        f"{'format':<12} {'fp32 b1 p50':>12} {'int8 b1 p50':>12} {'fp32 b64 /s':>13} {'int8 b64 /s':>13} {'int8/fp32 b64':>14}"
    )
    for fmt in ("torchscript", "onnx", "openvino", "executorch"):
        f1, i1 = rows.get((fmt, "fp32", 1)), rows.get((fmt, "int8", 1))
        f64, i64 = rows.get((fmt, "fp32", 64)), rows.get((fmt, "int8", 64))
        if not f1:
            continue

        def p50(r):
            return f"{r['latency_us']['p50']:.1f} us" if r else "-"

        def tp(r):
            return f"{r['throughput_per_s']:,.0f}" if r else "-"

        ratio = f"{i64['throughput_per_s'] / f64['throughput_per_s']:.2f}x" if (i64 and f64) else "-"
        print(f"{fmt:<12} {p50(f1):>12} {p50(i1):>12} {tp(f64):>13} {tp(i64):>13} {ratio:>14}")
    for s in report["skipped"]:
        if s["backend"] != "torch":
            print(f"  (skipped {s['backend']}:{s['device']}: {s['reason'][:90]})")


def torch_sgemm_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def roofline(bundle, seconds: float) -> None:
    gf = max(sgemm_gflops(1024, 1.0), torch_sgemm_gflops(1024, 1.0))
    roof = gf * 1e9 / FLOP_PER_SAMPLE
    print(
        f"\nfp32 roofline: sgemm 1024^3 {gf:.1f} GFLOP/s -> {roof:,.0f} samples/s at {FLOP_PER_SAMPLE:,} FLOP/sample"
    )
    cfg = BenchConfig(batch_sizes=(256,), warmup_seconds=0.3, min_iters=50, min_seconds=seconds)
    best = (0.0, "")
    for backend in ("onnxruntime", "openvino", "torchscript"):
        report = bench(
            bundle, backends=[backend], precisions=["fp32"], devices=["cpu"], config=cfg, progress=False
        )
        t = report["rows"][0]["throughput_per_s"]
        print(f"  {backend:<12} batch 256: {t:>10,.0f}/s  ({t / roof * 100:5.1f}% of roofline)")
        best = max(best, (t, backend))
    print(
        f"best fp32 batch-256 throughput: {best[0]:,.0f}/s ({best[1]}) = {best[0] / roof * 100:.1f}% of roofline"
    )


def benchmark_app(bundle, ov_p50: float, seconds: int) -> None:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        print("\nbenchmark_app: not found")
        return
    xml = bundle.path_of(bundle.artifact("openvino"))
    cmd = [
        exe,
        "-m",
        str(xml),
        "-d",
        "CPU",
        "-hint",
        "latency",
        "-api",
        "sync",
        "-t",
        str(seconds),
        "-shape",
        "[1,1,28,28]",
        "-infer_precision",
        "f32",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"Median:\s*([\d.]+)\s*(ms|us)", out.stdout)
    if not m:
        print("\nbenchmark_app: no median in its output")
        return
    med = float(m.group(1)) * (1e3 if m.group(2) == "ms" else 1.0)
    print(
        f"\nOpenVINO batch-1 p50: edgeport {ov_p50:.1f} us vs benchmark_app -hint latency median {med:.1f} us; "
        f"ratio {ov_p50 / med:.2f} (target within 20%)"
    )


# ------------------------------------------------------------------ the bundles


def build_bundles(tmp: Path, models: list[str], data_dir) -> dict:
    from edgeport.export.api import export

    out = {}
    if "seed" in models:
        from edgeport.config import TrainConfig
        from edgeport.seed.train import train

        train(TrainConfig(epochs=6), data_dir=data_dir, out=tmp / "run", progress=False)
        out["seed"] = export(
            tmp / "run",
            tmp / "seed",
            config=ExportConfig(int8=True),
            data_dir=data_dir,
            calibration=CalibrationConfig(),
            progress=False,
        )
    if "resnet18" in models:
        out["resnet18"] = export(
            model_ref="torchvision:resnet18",
            random_init=True,
            model_args={"num_classes": 10},
            input_shape=(1, 3, 224, 224),
            out=tmp / "resnet18",
            progress=False,
            config=ExportConfig(parity_samples=32, golden_samples=8),
        )
    if "two-input" in models:
        out["two-input"] = export(
            model_ref="user_models:two_in_two_out",
            random_init=True,
            inputs=["image:1,3,16,16", "vector:1,6:float32"],
            out=tmp / "two",
            progress=False,
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"), help="MNIST root (for the seed model)"
    )
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; best p50 kept (default 3)")
    ap.add_argument("--models", default="seed,resnet18,two-input")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-overhead-"))
    try:
        print(f"building bundles ({', '.join(models)}) in {tmp} ...", flush=True)
        bundles = build_bundles(tmp, models, args.data_dir)
        for name, b in bundles.items():
            best = overhead(b, name, args.seconds, args.rounds)
            if name == "seed":
                k = min(best, key=best.get)
                print(f"best batch-1 p50: {best[k]:.1f} us ({k})")
                four_formats(b, args.seconds)
                roofline(b, args.seconds)
                benchmark_app(b, best["openvino"], int(max(3, args.seconds * 3)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
