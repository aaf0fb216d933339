"""ONNX int8 through ``onnxruntime.quantization.quantize_static``.

QDQ format, per-channel symmetric int8 weights, uint8 activations (U8S8, ORT's
recommended x86 layout).  Only the weighted ops (Gemm/MatMul/Conv) are
quantized: the final Softmax stays fp32, because uint8 probabilities (steps of
1/255) would tie the top classes and cost agreement for no speed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ExportError
from .adapters import ort_reader
from .dataset import CalibrationSet

ONNX_METHODS = ("minmax", "percentile", "entropy")
OP_TYPES = ["Gemm", "MatMul", "Conv"]


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _calibrate_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    table = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in table:
        raise ConfigError(f"ONNX calibration method must be one of {', '.join(table)}, got {method!r}")
    return table[method]


def input_name(path: str | os.PathLike) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def quantize_onnx(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calset: CalibrationSet,
    *,
    method: str = "minmax",
    quant_format: str = "qdq",
    per_channel: bool = True,
) -> dict:
    """Write an int8 copy of ``fp32_path`` to ``out_path``; returns the settings used."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[quant_format]
    extra = {"WeightSymmetric": True, "ActivationSymmetric": False}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # ORT prints histogram progress to stdout and nags through the root logger.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
        warnings.simplefilter("ignore")
        try:
            quantize_static(
                str(fp32_path),
                str(out_path),
                ort_reader(calset, input_name(fp32_path)),
                quant_format=fmt,
                op_types_to_quantize=OP_TYPES,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=_calibrate_method(method),
                extra_options=extra,
                calibration_cache_path=None,
            )
        except Exception as exc:
            raise ExportError(
                f"ONNX int8 quantization ({method}) of {fp32_path} failed: {str(exc).splitlines()[0]}"
            ) from None
    return {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "calibration_method": method,
        "quant_format": quant_format.upper(),
        "per_channel": per_channel,
        "activation_type": "uint8",
        "weight_type": "int8",
        "op_types": OP_TYPES,
    }


def ort_predict(path: str | os.PathLike, x: np.ndarray, batch_size: int = 1000, threads: int | None = None):
    """Outputs of an ONNX file on ``x`` with ORT's CPU provider."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate(
        [sess.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    )
