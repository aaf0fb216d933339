"""edgeport's runtime overhead, side by side with hand-written loops, in one process.

Prints, per backend:
  - edgeport's batch-1 p50 (runtime.benchmark, the code `edgeport bench` runs) vs a
    minimal hand-written loop over the same runtime's fastest Python API
    (target: ratio <= 1.15);
  - the best batch-1 p50 (target <= 30 us);
  - the best fp32 batch-256 throughput vs the machine's fp32 roofline measured
    now: the large-sgemm rate / FLOP per sample (target >= 90%);
  - OpenVINO batch-1 p50 vs `benchmark_app -hint latency` on the same IR (target within 20%).

Usage: python benchmarks/runtime_overhead.py [--bundle B] [--seconds 2] [--rounds 3]
Without --bundle it builds a seeded mnist-mlp bundle in a temporary folder.
Timing on a shared machine is noisy: rounds alternate edgeport and the hand loop
and the best p50 of each is kept.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from edgeport.export.bundle import load_bundle

from edgeport.config import BenchConfig
from edgeport.runtime.benchmark import bench_input, bench_runner, sgemm_gflops

FLOP_PER_SAMPLE = 2 * (784 * 96 + 96 * 256 + 256 * 10)  # 204,800 for mnist-mlp


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
        if t1 > end:
            break
    return float(np.median(ts)) / 1e3


def hand_ort(bundle, x, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(
        str(bundle.path_of(bundle.artifact("onnx"))), so, providers=["CPUExecutionProvider"]
    )
    y = sess.run(None, {"input": x})[0]
    xv = ort.OrtValue.ortvalue_from_numpy(x, "cpu", 0)
    yv = ort.OrtValue.ortvalue_from_shape_and_type(list(y.shape), np.float32, "cpu", 0)
    b = sess.io_binding()
    b.bind_ortvalue_input("input", xv)
    b.bind_ortvalue_output("probs", yv)
    keep = (xv, yv)
    return lambda: sess.run_with_iobinding(b), keep


def hand_openvino(bundle, x, threads):
    import openvino as ov

    art = bundle.artifact("openvino")
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = ov.Core().compile_model(str(bundle.path_of(art)), "CPU", cfg)
    req = compiled.create_infer_request()
    req.set_input_tensor(ov.Tensor(x, shared_memory=True))
    return req.infer, (compiled, x)


def hand_torchscript(bundle, x, threads):
    import torch

    torch.set_num_threads(threads)
    m = torch.jit.load(str(bundle.path_of(bundle.artifact("torchscript"))))
    t = torch.from_numpy(x)

    def call():
        with torch.inference_mode():
            m(t)

    return call, (m, t)


def hand_torch(bundle, x, threads):
    import torch
    from edgeport.models import build_model
    from safetensors.torch import load_file

    torch.set_num_threads(threads)
    m = build_model(bundle.manifest.model)
    m.load_state_dict(load_file(str(bundle.path_of(bundle.artifact("torch")))))
    m.eval()
    t = torch.from_numpy(x)

    def call():
        with torch.inference_mode():
            m(t)

    return call, (m, t)


HAND = {
    "onnxruntime": hand_ort,
    "openvino": hand_openvino,
    "torchscript": hand_torchscript,
    "torch": hand_torch,
}


def torch_sgemm_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    try:
        import torch
    except ImportError:
        return 0.0
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def benchmark_app_median(xml: Path, seconds: int) -> tuple[float | None, str]:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        return None, "benchmark_app not found"
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
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return None, "benchmark_app timed out"
    m = re.search(r"Median:\s*([\d.]+)\s*(ms|us)", out.stdout)
    if not m:
        return None, "no median in benchmark_app output: " + (out.stderr or out.stdout)[-300:]
    scale = 1e3 if m.group(2) == "ms" else 1.0
    threads = re.search(r"INFERENCE_NUM_THREADS:\s*(\d+)", out.stdout)
    return float(m.group(1)) * scale, f"benchmark_app threads={threads.group(1) if threads else '?'}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="bundle folder (default: build a seeded one)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; best p50 kept (default 3)")
    ap.add_argument("--backends", default="onnxruntime,openvino,torchscript,torch")
    args = ap.parse_args(argv)

    tmp = None
    if args.bundle is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from test_runtime_support import write_bundle

        tmp = Path(tempfile.mkdtemp(prefix="edgeport-overhead-"))
        args.bundle = write_bundle(tmp / "bundle", int8=False)
    bundle = load_bundle(args.bundle)
    backends = args.backends.split(",")
    cfg1 = BenchConfig(batch_sizes=(1,), warmup_seconds=0.3, min_iters=200, min_seconds=args.seconds)

    print(
        f"bundle {bundle.path}; {args.rounds} rounds x {args.seconds:g} s; batch 1, 1 thread unless noted\n"
    )
    print(f"{'backend':<12} {'edgeport p50':>13} {'hand p50':>10} {'ratio':>7}  (target <= 1.15)")
    best = {}
    for backend in backends:
        from edgeport.runtime.registry import backend_class

        threads = backend_class(backend).default_threads_for(1)
        runner = bundle.runner(backend, threads=threads).load()
        x = bench_input(runner, 1)
        call, _keep = HAND[backend](bundle, x.copy(), threads)
        ep, hand = [], []
        for _ in range(args.rounds):
            ep.append(bench_runner(runner, 1, cfg1)["latency_us"]["p50"])
            hand.append(hand_loop(call, args.seconds))
        runner.close()
        e, h = min(ep), min(hand)
        best[backend] = e
        print(f"{backend:<12} {e:>10.1f} us {h:>7.1f} us {e / h:>7.2f}  (threads={threads})")
    name = min(best, key=best.get)
    print(f"\nbest batch-1 p50: {best[name]:.1f} us ({name}); target <= 30 us")

    gf_np = sgemm_gflops(1024, 1.0)
    gf_t = torch_sgemm_gflops(1024, 1.0)
    gf = max(gf_np, gf_t)
    roof = gf * 1e9 / FLOP_PER_SAMPLE
    print(
        f"\nfp32 roofline: sgemm 1024^3 numpy {gf_np:.1f} GFLOP/s, torch {gf_t:.1f} GFLOP/s -> "
        f"{roof:,.0f} samples/s at {FLOP_PER_SAMPLE:,} FLOP/sample"
    )
    cfg256 = BenchConfig(batch_sizes=(256,), warmup_seconds=0.3, min_iters=50, min_seconds=args.seconds)
    tput = {}
    for backend in backends:
        from edgeport.runtime.registry import backend_class

        runner = bundle.runner(backend, threads=backend_class(backend).default_threads_for(256)).load()
        row = bench_runner(runner, 256, cfg256)
        runner.close()
        tput[backend] = row["throughput_per_s"]
        at_p50 = 256e6 / row["latency_us"]["p50"]
        print(
            f"  {backend:<12} batch 256: {row['throughput_per_s']:>10,.0f}/s  "
            f"({row['throughput_per_s'] / roof * 100:5.1f}% of roofline, threads={row['threads']}; "
            f"at p50 {row['latency_us']['p50']:.0f} us: {at_p50:,.0f}/s = {at_p50 / roof * 100:.0f}%)"
        )
    name = max(tput, key=tput.get)
    print(
        f"best batch-256 throughput: {tput[name]:,.0f}/s ({name}) = {tput[name] / roof * 100:.1f}% of roofline; "
        "target >= 90%"
    )

    if "openvino" in backends:
        xml = bundle.path_of(bundle.artifact("openvino"))
        med, note = benchmark_app_median(xml, int(max(3, args.seconds * 2)))
        if med is None:
            print(f"\nbenchmark_app: {note}")
        else:
            ov1 = best["openvino"]
            print(
                f"\nOpenVINO batch-1 p50: edgeport {ov1:.1f} us vs benchmark_app -hint latency median {med:.1f} us "
                f"({note}); ratio {ov1 / med:.2f} (target within 20%)"
            )
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
