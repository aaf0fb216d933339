"""The int8 step of an export: calibrate, quantize, select, prove, report.

``add_int8_artifacts`` is called by export/api.py after the fp32 artifacts
exist in the staging folder.  For each format it quantizes every candidate
configuration on one calibration set, scores each on the validation split
(never test), keeps the best, proves the file really is int8 (ExportError
otherwise), and measures per-layer error against the fp32 PyTorch model.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..calibration import layer_report as lr
from ..calibration.adapters import torch_batches
from ..calibration.dataset import CalibrationSet
from ..calibration.proof import prove
from ..config import CalibrationConfig
from ..data import MnistData
from ..errors import ConfigError, ExportError

INT8_FILES = {
    "onnx": "onnx/model.int8.onnx",
    "openvino": "openvino/model.int8.xml",
    "torchscript": "torchscript/model.int8.pt",
}
# Validation images the per-layer report runs on.
LAYER_REPORT_IMAGES = 1000


@dataclass
class Int8Result:
    artifacts: list[dict]
    calibration: dict
    layer_report: dict


def candidates(fmt: str, method: str) -> list[tuple[str, dict]]:
    """(name, quantizer kwargs) tried for ``fmt``; kept small so auto stays fast.

    OpenVINO always tries both NNCF presets: which one keeps accuracy depends on
    the model (the default ``performance`` preset lost 0.89 pt on one run here).
    """
    if fmt == "onnx":
        methods = ("minmax", "percentile", "entropy") if method == "auto" else (method,)
        return [(m, {"method": m}) for m in methods]
    if fmt == "openvino":
        pairs = (
            [("mixed", "default"), ("performance", "default"), ("mixed", "minmax")]
            if method == "auto"
            else [("mixed", method), ("performance", method)]
        )
        return [(f"{p}/{e}", {"preset": p, "range_estimator": e}) for p, e in pairs]
    if fmt == "torchscript":
        if method == "auto":
            return [("minmax", {"method": "minmax"}), ("histogram", {"method": "entropy"})]
        return [(method if method == "minmax" else "histogram", {"method": method})]
    raise ConfigError(f"no int8 support for format {fmt!r}; choose from {', '.join(INT8_FILES)}")


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"int8: {msg}", file=sys.stderr, flush=True)


def _companions(path: Path) -> list[Path]:
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


class _Quantizer:
    """Per-format quantize-to-file and predict, so selection is one loop."""

    def __init__(self, fmt: str, model, fp32: Path, calset: CalibrationSet):
        self.fmt, self.model, self.fp32, self.calset = fmt, model, fp32, calset
        self.eager = None  # torchscript: the eager int8 module of the last candidate

    def quantize(self, out: Path, kwargs: dict) -> dict:
        if self.fmt == "onnx":
            from ..calibration.onnx_int8 import quantize_onnx

            return quantize_onnx(self.fp32, out, self.calset, **kwargs)
        if self.fmt == "openvino":
            from ..calibration.openvino_int8 import quantize_openvino

            return quantize_openvino(self.fp32, out, self.calset, **kwargs)
        from .torchscript_int8 import quantize_torchscript

        example = torch.from_numpy(next(iter(self.calset.batches(2))))
        self.eager, settings = quantize_torchscript(
            self.model, torch_batches(self.calset), example, out, **kwargs
        )
        return settings

    def predict(self, path: Path, x: np.ndarray) -> np.ndarray:
        if self.fmt == "onnx":
            from ..calibration.onnx_int8 import ort_predict

            return ort_predict(path, x)
        if self.fmt == "openvino":
            from ..calibration.openvino_int8 import ov_predict

            return ov_predict(path, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
            module = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return np.concatenate(
                [module(torch.from_numpy(x[i : i + 1000])).numpy() for i in range(0, len(x), 1000)]
            )


def _torch_predict(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(x[i : i + 1000])).numpy() for i in range(0, len(x), 1000)]
        )


def _quantize_format(
    fmt, model, fp32_path: Path, staging: Path, calset, method, val, test, progress
) -> tuple[dict, object]:
    xv, yv, ref_v = val
    q = _Quantizer(fmt, model, fp32_path, calset)
    final = staging / INT8_FILES[fmt]
    work = staging / ".int8-candidates" / fmt
    work.mkdir(parents=True, exist_ok=True)
    scores: dict[str, tuple[float, float]] = {}
    best = None
    t0 = time.perf_counter()
    for i, (name, kwargs) in enumerate(candidates(fmt, method)):
        out = work / f"c{i}{final.suffix}"
        settings = q.quantize(out, kwargs)
        pred = q.predict(out, xv).argmax(1)
        scores[name] = (float(np.mean(pred == yv)), float(np.mean(pred == ref_v)))
        _say(
            progress,
            f"{fmt} {name}: val {scores[name][0] * 100:.2f}%, agreement {scores[name][1] * 100:.2f}%",
        )
        if best is None or scores[name] > scores[best[0]]:  # val accuracy, then agreement with fp32
            best = (name, out, settings, q.eager)
    name, out, settings, eager = best
    final.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(_companions(out), _companions(final), strict=True):
        src.replace(dst)
    shutil.rmtree(work, ignore_errors=True)
    proof = prove(fmt, final, fp32_path)  # raises ExportError naming the failed check
    xt, yt, ref_t = test
    pred_t = q.predict(final, xt).argmax(1)
    details = {
        **settings,
        "calibration_method": method if method != "auto" else f"auto -> {name}",
        "selected": name,
        "candidates": {n: round(s[0], 6) for n, s in scores.items()},
        "candidate_agreement": {n: round(s[1], 6) for n, s in scores.items()},
        "val_accuracy": scores[name][0],
        "val_agreement": scores[name][1],
        "test_accuracy": float(np.mean(pred_t == yt)),
        "test_agreement": float(np.mean(pred_t == ref_t)),
        "proof": proof,
        "size_ratio": proof["size_ratio"],
        "quantize_seconds": round(time.perf_counter() - t0, 2),
    }
    artifact = {
        "format": fmt,
        "precision": "int8",
        "file": final.relative_to(staging).as_posix(),
        "extra_files": [p.relative_to(staging).as_posix() for p in _companions(final)[1:]],
        "details": details,
    }
    return artifact, (eager if fmt == "torchscript" else final)


def add_int8_artifacts(
    *,
    staging: Path,
    model: torch.nn.Module,
    fp32: dict[str, Path],
    data: MnistData,
    config: CalibrationConfig,
    formats: Sequence[str],
    progress: bool = True,
) -> Int8Result:
    """Quantize each of ``formats`` from its fp32 file in ``fp32``; write the int8 files into ``staging``."""
    config.validate()
    staging = Path(staging)
    missing = [f for f in formats if f not in fp32]
    if missing:
        raise ExportError(
            f"int8 needs the fp32 {', '.join(missing)} artifact(s) first; export those formats too"
        )
    model = model.eval()
    calset = CalibrationSet.from_data(data, config)
    xv = data.preprocessing.apply(data.val_images)
    xt = data.preprocessing.apply(data.test_images)
    val = (xv, data.val_labels, _torch_predict(model, xv).argmax(1))
    test = (xt, data.test_labels, _torch_predict(model, xt).argmax(1))
    x_report = xv[:LAYER_REPORT_IMAGES]
    artifacts, report = [], {}
    for fmt in formats:
        artifact, handle = _quantize_format(
            fmt, model, Path(fp32[fmt]), staging, calset, config.method, val, test, progress
        )
        artifacts.append(artifact)
        report[fmt] = lr.layer_errors(model, fmt, handle, x_report)
    shutil.rmtree(staging / ".int8-candidates", ignore_errors=True)
    return Int8Result(
        artifacts=artifacts,
        calibration=calset.to_manifest(config.method),
        layer_report={
            "reference": "pytorch fp32",
            "split": "val",
            "images": len(x_report),
            "formats": report,
        },
    )
