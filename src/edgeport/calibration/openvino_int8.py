"""OpenVINO int8 through ``nncf.quantize`` on the OpenVINO model.

NNCF's defaults are not a given: on this model the ``performance`` preset
(symmetric activations) loses ~0.9 pt, while ``mixed`` (asymmetric
activations, which suits the sigmoid/tanh outputs that are never negative /
centred) keeps fp32 accuracy.  The preset and the activation range estimator
are therefore chosen by measurement (``method="auto"``, see int8.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ExportError
from .adapters import nncf_dataset
from .dataset import CalibrationSet

# Calibration method -> NNCF activation range estimator (None: NNCF's default).
RANGE_ESTIMATORS = {
    "default": None,
    "minmax": "MINMAX",
    "percentile": "MEAN_QUANTILE",
    "entropy": "HISTOGRAM",
}
PRESETS = ("mixed", "performance")


def quantize_openvino(
    fp32_xml: str | os.PathLike,
    out_xml: str | os.PathLike,
    calset: CalibrationSet,
    *,
    preset: str = "mixed",
    range_estimator: str = "default",
    fast_bias_correction: bool = True,
) -> dict:
    """Write an int8 IR (``out_xml`` + ``.bin``) from ``fp32_xml``; returns the settings used."""
    import openvino as ov

    from . import import_nncf

    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if preset not in PRESETS:
        raise ConfigError(f"NNCF preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if range_estimator not in RANGE_ESTIMATORS:
        raise ConfigError(
            f"range estimator must be one of {', '.join(RANGE_ESTIMATORS)}, got {range_estimator!r}"
        )
    advanced = AdvancedQuantizationParameters()
    est = RANGE_ESTIMATORS[range_estimator]
    if est is not None:
        advanced.activations_range_estimator_params = getattr(RangeEstimatorParametersSet, est)
    try:
        model = ov.Core().read_model(str(fp32_xml))
        nncf.set_log_level(logging.ERROR)  # progress bars and INFO lines would drown the CLI's output
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(
                model,
                nncf_dataset(calset),
                preset=nncf.QuantizationPreset(preset),
                subset_size=len(calset),
                fast_bias_correction=fast_bias_correction,
                advanced_parameters=advanced,
            )
        Path(out_xml).parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    except (ConfigError, ExportError):
        raise
    except Exception as exc:
        raise ExportError(
            f"OpenVINO int8 quantization of {fp32_xml} failed: {str(exc).splitlines()[0]}"
        ) from None
    return {
        "quantizer": "nncf.quantize",
        "nncf": nncf.__version__,
        "preset": preset,
        "activations_range_estimator": est or "nncf default",
        "fast_bias_correction": fast_bias_correction,
        "subset_size": len(calset),
    }


def ov_predict(xml: str | os.PathLike, x: np.ndarray, batch_size: int = 1000, config: dict | None = None):
    """Outputs of an IR on ``x`` on OpenVINO's CPU plugin."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", config or {})
    req = compiled.create_infer_request()
    outs = [
        next(iter(req.infer({0: x[i : i + batch_size]}).values())).copy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs)
