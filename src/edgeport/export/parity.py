"""Parity at export: run each artifact file directly and compare it with PyTorch.

Inputs: real test images plus edge inputs (zeros, ones, the pixel extremes,
uniform noise), at every configured batch size, so a batch size baked into a
graph is caught.  Tolerances come from :mod:`edgeport.runtime.parity`; every
failure is collected and one :class:`ParityError` lists them all.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..runtime.parity import TOLERANCES, Tolerance, compare, raise_on_failures


def edge_inputs(
    sample_shape: tuple[int, ...], value_range: tuple[float, float], n_noise: int = 60, seed: int = 0
):
    lo, hi = value_range
    rng = np.random.default_rng(seed)
    fixed = [np.full(sample_shape, v, np.float32) for v in (0.0, 1.0, lo, hi)]
    noise = rng.uniform(lo, hi, size=(n_noise, *sample_shape)).astype(np.float32)
    return np.concatenate([np.stack(fixed), noise])


def torch_reference(model: torch.nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return np.concatenate(
            [model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]
        )


def _onnx_fn(path: Path) -> Callable:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])
    name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    return lambda x: sess.run([out], {name: x})[0]


def _openvino_fn(path: Path) -> Callable:
    import openvino as ov

    # f32 inference precision: no bf16/fp16 execution sneaks in on CPUs that have it.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0].copy()


def _torchscript_fn(path: Path) -> Callable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.load is deprecated upstream
        module = torch.jit.load(str(path), map_location="cpu")

    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run


RUNNERS = {"onnx": _onnx_fn, "openvino": _openvino_fn, "torchscript": _torchscript_fn}


def check_parity(
    artifacts: list[tuple[str, str, Path]],
    x: np.ndarray,
    ref: np.ndarray,
    *,
    batch_sizes: tuple[int, ...],
    fp32_tolerance: Tolerance | None = None,
    inputs_note: dict | None = None,
) -> dict:
    """``artifacts``: (format, precision, primary file).  Raises ParityError listing every failure."""
    results, summary = [], {}
    t0 = time.perf_counter()
    for fmt, precision, path in artifacts:
        tol = fp32_tolerance if (precision == "fp32" and fp32_tolerance) else TOLERANCES[precision]
        run = RUNNERS[fmt](path)
        rows = {}
        for bs in batch_sizes:
            out = np.concatenate([np.asarray(run(x[i : i + bs])) for i in range(0, len(x), bs)])
            res = compare(f"{fmt}/{precision}", ref, out, precision, batch_size=bs, tolerance=tol)
            results.append(res)
            rows[str(bs)] = {
                "max_abs": res.max_abs,
                "max_rel": res.max_rel,
                "agreement": res.agreement,
                "passed": res.passed,
            }
        summary[f"{fmt}/{precision}"] = {
            "tolerance": {"atol": tol.atol, "rtol": tol.rtol, "min_agreement": tol.min_agreement},
            "batch_sizes": rows,
        }
    raise_on_failures(results, "export parity against PyTorch")
    return {
        "reference": "torch eager, fp32, cpu",
        "inputs": dict(inputs_note or {}, n=int(len(x))),
        "batch_sizes": list(batch_sizes),
        "seconds": round(time.perf_counter() - t0, 3),
        "passed": True,
        "artifacts": summary,
    }
