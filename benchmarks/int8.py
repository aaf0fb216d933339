"""int8 vs fp32 on every format: accuracy, agreement, size, batch-1 latency, batch-256 throughput.

    .venv/bin/python benchmarks/int8.py --run /tmp/int8_run --data-dir /work/shared/data/mnist

Exports the fp32 artifacts of a trained run into a scratch folder, runs the
same int8 step the export uses (``add_int8_artifacts``, method auto), and
times fp32 and int8 in the same process with the same loop.  Then it tries the
configurations that might make int8 at batch 256 at least as fast as fp32:
ORT QOperator (QLinearMatMul kernels instead of QDQ), ORT dynamic
quantization (MatMulInteger), and OpenVINO's throughput hint.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from edgeport.calibration.dataset import CalibrationSet  # noqa: E402
from edgeport.calibration.onnx_int8 import quantize_onnx  # noqa: E402
from edgeport.calibration.proof import artifact_bytes  # noqa: E402
from edgeport.data import load_mnist  # noqa: E402

from edgeport.checkpoint import load_run  # noqa: E402
from edgeport.config import CalibrationConfig  # noqa: E402
from edgeport.export.int8 import add_int8_artifacts  # noqa: E402
from test_int8 import write_fp32  # noqa: E402  (the same fp32 export the tests use)


def timed(fn, x: np.ndarray, seconds: float) -> float:
    """Median seconds per call of ``fn(x)`` over at least ``seconds`` (after a warm-up).

    The warm-up is long on purpose: TorchScript's profiling executor re-optimizes
    for each new input shape during its first calls (ms per call until then).
    """
    warm = time.perf_counter() + 0.3
    for i in range(10_000):
        fn(x)
        if i >= 20 and time.perf_counter() > warm:
            break
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def ort_fn(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def ov_fn(path: Path, threads: int | None, hint: str | None = None):
    import openvino as ov

    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = threads
    if hint:
        cfg["PERFORMANCE_HINT"] = hint
    req = ov.Core().compile_model(str(path), "CPU", cfg).create_infer_request()
    return lambda x: next(iter(req.infer({0: x}).values()))


def ts_fn(path: Path, threads: int | None):
    # Always set it: without an explicit set_num_threads, quantized::linear at batch 1
    # stalled ~40 ms per call on this machine (fp32 was unaffected).
    torch.set_num_threads(threads or torch.get_num_threads())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path))

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run


def predict(fn, x: np.ndarray, bs: int = 1000) -> np.ndarray:
    return np.concatenate([fn(x[i : i + bs]) for i in range(0, len(x), bs)])


def row(label, make_fp32, make_int8, fp32_path, int8_path, xt, yt, ref, seconds, threads=None):
    """``make_*(threads) -> fn``.  Threads as edgeport's runtime defaults them unless
    --threads is given: 1 at batch 1, every core at batch 256."""
    b1, b256 = threads or 1, threads or (os.cpu_count() or 1)
    p32 = predict(make_fp32(b256), xt).argmax(1)
    p8 = predict(make_int8(b256), xt).argmax(1)
    l32, l8 = timed(make_fp32(b1), xt[:1], seconds), timed(make_int8(b1), xt[:1], seconds)
    t32, t8 = timed(make_fp32(b256), xt[:256], seconds), timed(make_int8(b256), xt[:256], seconds)
    print(
        f"{label:<34} {np.mean(p32 == yt) * 100:6.2f} {np.mean(p8 == yt) * 100:6.2f} "
        f"{np.mean(p8 == ref) * 100:7.2f} {artifact_bytes(int8_path) / artifact_bytes(fp32_path):6.3f} "
        f"{l32 * 1e6:8.1f} {l8 * 1e6:8.1f} {l32 / l8:5.2f} "
        f"{256 / t32 / 1e3:8.1f} {256 / t8 / 1e3:8.1f} {t32 / t8:5.2f}",
        flush=True,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="/tmp/int8_run", help="trained run folder (default: %(default)s)")
    ap.add_argument("--data-dir", default=None, help="MNIST root (default: $EDGEPORT_MNIST_ROOT)")
    ap.add_argument("--calibration-size", type=int, default=1000, help="default: %(default)s")
    ap.add_argument("--calibration-method", default="auto", help="default: %(default)s")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per backend (default: 1 at batch 1, every core at batch 256, as edgeport bench)",
    )
    ap.add_argument(
        "--seconds", type=float, default=1.0, help="timing window per measurement (default: %(default)s)"
    )
    args = ap.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # ORT's "consider pre-processing" nag

    model, _ = load_run(args.run)
    data = load_mnist(args.data_dir, download=False)
    cfg = CalibrationConfig(size=args.calibration_size, method=args.calibration_method)
    xt, yt = data.preprocessing.apply(data.test_images), data.test_labels
    with torch.no_grad():
        ref = model(torch.from_numpy(xt)).numpy().argmax(1)
    with tempfile.TemporaryDirectory(prefix="edgeport-int8-bench-") as tmp:
        staging = Path(tmp)
        fp32 = write_fp32(model, staging)
        t0 = time.perf_counter()
        res = add_int8_artifacts(
            staging=staging,
            model=model,
            fp32=fp32,
            data=data,
            config=cfg,
            formats=("torchscript", "onnx", "openvino"),
            progress=False,
        )
        print(
            f"int8 step (3 formats, method {cfg.method}, {cfg.size} images): {time.perf_counter() - t0:.1f} s"
        )
        for art in res.artifacts:
            d = art["details"]
            cands = ", ".join(f"{k} {v * 100:.2f}%" for k, v in d["candidates"].items())
            print(f"  {art['format']:<12} selected {d['selected']:<20} val candidates: {cands}")
        print(
            f"\nfp32 PyTorch test accuracy {np.mean(ref == yt) * 100:.2f}%   (ratios: fp32 time / int8 time, >1 = int8 faster)"
        )
        print(
            f"{'format / configuration':<34} {'fp32%':>6} {'int8%':>6} {'agree%':>7} {'size':>6} "
            f"{'b1 fp32':>8} {'b1 int8':>8} {'ratio':>5} {'b256 f32':>8} {'b256 i8':>8} {'ratio':>5}"
        )
        print(
            f"{'':<34} {'':>6} {'':>6} {'':>7} {'':>6} {'(us)':>8} {'(us)':>8} {'':>5} {'(k/s)':>8} {'(k/s)':>8}"
        )
        th = args.threads
        files = {a["format"]: staging / a["file"] for a in res.artifacts}
        makers = {"torchscript": ts_fn, "onnx": ort_fn, "openvino": ov_fn}
        labels = {
            "torchscript": "torchscript  x86/fbgemm static",
            "onnx": "onnx  ORT QDQ (exported)",
            "openvino": "openvino  NNCF (exported)",
        }
        for fmt, make in makers.items():
            row(
                labels[fmt],
                lambda t, m=make, f=fmt: m(fp32[f], t),
                lambda t, m=make, f=fmt: m(files[f], t),
                fp32[fmt],
                files[fmt],
                xt,
                yt,
                ref,
                args.seconds,
                th,
            )
        # Alternatives, for speed at batch 256 (not shipped unless they win).
        calset = CalibrationSet.from_data(data, cfg)
        method = res.artifacts[1]["details"]["selected"]
        qop = staging / "onnx/model.int8.qop.onnx"
        quantize_onnx(fp32["onnx"], qop, calset, method=method, quant_format="qoperator")
        row(
            f"onnx  ORT QOperator ({method})",
            lambda t: ort_fn(fp32["onnx"], t),
            lambda t: ort_fn(qop, t),
            fp32["onnx"],
            qop,
            xt,
            yt,
            ref,
            args.seconds,
            th,
        )
        from onnxruntime.quantization import QuantType, quantize_dynamic

        dyn = staging / "onnx/model.int8.dynamic.onnx"
        quantize_dynamic(str(fp32["onnx"]), str(dyn), per_channel=True, weight_type=QuantType.QInt8)
        row(
            "onnx  ORT dynamic (MatMulInteger)",
            lambda t: ort_fn(fp32["onnx"], t),
            lambda t: ort_fn(dyn, t),
            fp32["onnx"],
            dyn,
            xt,
            yt,
            ref,
            args.seconds,
            th,
        )
        for hint in ("THROUGHPUT", "LATENCY"):
            row(
                f"openvino  NNCF, hint {hint}",
                lambda t, h=hint: ov_fn(fp32["openvino"], t, h),
                lambda t, h=hint: ov_fn(files["openvino"], t, h),
                fp32["openvino"],
                files["openvino"],
                xt,
                yt,
                ref,
                args.seconds,
                th,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
