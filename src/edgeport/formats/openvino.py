"""OpenVINO IR: ``openvino.convert_model`` (from the staged ONNX file when there is one) and
``save_model``; int8 through ``nncf.quantize`` on the OpenVINO model.

``save_model`` writes natively, so it writes into the staging folder and the
result is read back before it counts (a full disk fails there, in Python).
NNCF's defaults are not a given: the ``performance`` preset (symmetric
activations) lost 0.9 pt on the seed MLP while ``mixed`` kept fp32 accuracy,
so presets and range estimators are candidates, chosen by measurement.
"""

from __future__ import annotations

import contextlib
import io
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ConfigError, ExportError, first_line

FILE = "openvino/model.xml"
FP16_FILE = "openvino/model.fp16.xml"
INT8_FILE = "openvino/model.int8.xml"
RANGE_ESTIMATORS = {
    "default": None,
    "minmax": "MINMAX",
    "percentile": "MEAN_QUANTILE",
    "entropy": "HISTOGRAM",
}
PRESETS = ("mixed", "performance")
_INT8_TYPES = {"i8", "u8"}


def _ov():
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailableError(
            "OpenVINO export needs openvino: pip install 'edgeport[openvino]'"
        ) from None
    return ov


def _bin(rel: str) -> str:
    return rel.removesuffix(".xml") + ".bin"


def _save(ov, model, ctx, rel: str, fp16: bool) -> None:
    path = ctx.path(rel)
    try:
        ov.save_model(model, str(path), compress_to_fp16=fp16)  # say what we mean: it compresses by default
        ov.Core().read_model(str(path))  # a truncated write (full disk) fails here
    except Exception as exc:  # noqa: BLE001
        for p in (path, ctx.staging / _bin(rel)):
            p.unlink(missing_ok=True)
        raise OSError(28, f"OpenVINO could not write {rel} ({first_line(exc)})") from None


def bounded_shapes(ov, sig) -> list:
    """One ``PartialShape`` per input: fixed sizes, and ``Dimension(min, max)`` for every named dim."""
    out = []
    for spec in sig.inputs:
        dims = []
        for d in spec.shape:
            if isinstance(d, int):
                dims.append(ov.Dimension(d))
            else:
                b = sig.dims[d]
                dims.append(ov.Dimension(b.min, b.max))
        out.append(ov.PartialShape(dims))
    return out


def export(ctx) -> list:
    import torch

    ov = _ov()
    sig = ctx.signature
    onnx = ctx.fp32("onnx")
    try:
        if onnx is not None:
            model, source = ov.convert_model(str(ctx.staging / onnx.file)), "onnx"
        else:
            from .onnx import no_fastpath

            with torch.no_grad(), no_fastpath():
                model = ov.convert_model(
                    ctx.model.eval(), example_input=ctx.example, input=bounded_shapes(ov, sig)
                )
            source = "torch"
            for port, name in zip(model.inputs, sig.input_names, strict=True):
                port.get_tensor().set_names({name})
            for port, name in zip(model.outputs, sig.output_names, strict=True):
                port.get_tensor().set_names({name})
        # bounded partial shapes: every dynamic dim keeps the manifest's min..max
        model.reshape({name: shape for name, shape in zip(sig.input_names, bounded_shapes(ov, sig))})
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"OpenVINO conversion failed: {first_line(exc)}") from None
    arts = []
    variants = [("fp32", FILE, False)] + ([("fp16", FP16_FILE, True)] if ctx.config.fp16 else [])
    for precision, rel, fp16 in variants:
        _save(ov, model, ctx, rel, fp16)
        details = {"source": source, "compress_to_fp16": fp16, "openvino": ov.get_version()}
        arts.append(ctx.artifact("openvino", precision, rel, [_bin(rel)], details))
    return arts


# --------------------------------------------------------------------------- int8


def int8_candidates(method: str, ctx=None) -> list[tuple[str, dict]]:
    """NNCF presets x range estimators; without VNNI also NNCF's overflow fix on every layer (7-bit weights);
    for transformers (LayerNorm, attention, GELU) NNCF's transformer preset (SmoothQuant, no quantized
    softmax/LayerNorm inputs) too."""
    from .onnx import vnni

    if method == "auto":
        pairs = [("mixed", "default"), ("performance", "default"), ("mixed", "minmax")]
    else:
        pairs = [("mixed", method), ("performance", method)]
    cands = [(f"{p}/{e}", {"preset": p, "range_estimator": e}) for p, e in pairs]
    if ctx is not None and is_transformer(ctx.model):
        cands.append(
            (
                f"{pairs[0][0]}/transformer",
                {"preset": pairs[0][0], "range_estimator": pairs[0][1], "transformer": True},
            )
        )
    if not vnni():
        cands.append(
            (
                f"{pairs[0][0]}/{pairs[0][1]}/overflow-fix",
                {"preset": pairs[0][0], "range_estimator": pairs[0][1], "overflow_fix": "enable"},
            )
        )
    return cands


class _Samples:
    """One-sample feed dicts streamed from the calibration source (re-iterable, sized) for nncf.Dataset."""

    def __init__(self, calibration, batch_size: int) -> None:
        self.calibration, self.batch_size = calibration, batch_size

    def __len__(self) -> int:
        return len(self.calibration)

    def __iter__(self):
        for feeds, _ in self.calibration.batches(self.batch_size):
            n = len(next(iter(feeds.values())))
            for i in range(n):
                yield {k: v[i : i + 1] for k, v in feeds.items()}


def import_nncf():
    """``import nncf`` without torch's "No CUDA runtime is found" log line."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf

    return nncf


def quantize(
    ctx,
    fp32,
    calibration,
    out_rel: str,
    *,
    preset: str = "mixed",
    range_estimator: str = "default",
    overflow_fix: str = "first_layer_only",
    transformer: bool = False,
    float_modules: tuple[str, ...] = (),
):
    """``float_modules``: PyTorch module names kept float through NNCF's ``IgnoredScope``."""
    ov = _ov()
    nncf = import_nncf()
    advanced, est = _advanced(preset, range_estimator, overflow_fix)
    try:
        model = ov.Core().read_model(str(ctx.staging / fp32.file))
        nncf.set_log_level(logging.ERROR)  # progress bars and INFO lines would drown the CLI's output
        with contextlib.redirect_stdout(io.StringIO()):
            extra = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
            if float_modules:
                extra["ignored_scope"] = nncf.IgnoredScope(
                    patterns=_ignored(ctx, fp32, float_modules), validate=False
                )
            quantized = nncf.quantize(
                model,
                nncf.Dataset(_Samples(calibration, ctx.calibration.batch_size)),
                preset=nncf.QuantizationPreset(preset),
                subset_size=len(calibration),
                fast_bias_correction=True,
                advanced_parameters=advanced,
                **extra,
            )
    except (ConfigError, ExportError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"OpenVINO int8 quantization failed: {first_line(exc)}") from None
    _save(ov, quantized, ctx, out_rel, False)
    return [out_rel, _bin(out_rel)], {
        "quantizer": "nncf.quantize",
        "nncf": nncf.__version__,
        "preset": preset,
        "activations_range_estimator": est or "nncf default",
        "fast_bias_correction": True,
        "overflow_fix": overflow_fix,
        "model_type": "transformer" if transformer else "default",
        "subset_size": len(calibration),
        "float_modules": list(float_modules),
    }


def _advanced(preset: str, range_estimator: str, overflow_fix: str):
    """NNCF's advanced parameters for a candidate (overflow fix, activation range estimator)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if preset not in PRESETS:
        raise ConfigError(f"NNCF preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if range_estimator not in RANGE_ESTIMATORS:
        raise ConfigError(
            f"range estimator must be one of {', '.join(RANGE_ESTIMATORS)}, got {range_estimator!r}"
        )
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix))
    est = RANGE_ESTIMATORS[range_estimator]
    if est is not None:
        advanced.activations_range_estimator_params = getattr(RangeEstimatorParametersSet, est)
    return advanced, est


def inspect_int8(path: Path) -> dict:
    """FakeQuantize count and int8/uint8 constants of an IR ``.xml``, parsed directly (no openvino)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ExportError(f"cannot read OpenVINO IR {Path(path).name}: {exc}; re-export the bundle") from None
    types: Counter = Counter()
    consts = values = 0
    for layer in root.iter("layer"):
        kind = layer.get("type", "")
        types[kind] += 1
        if kind == "Const":
            data = layer.find("data")
            if data is not None and data.get("element_type") in _INT8_TYPES:
                dims = [d.text for d in layer.iter("dim")]
                if len(dims) >= 2:
                    consts += 1
                    values += int(np.prod([int(d) for d in dims if d and d.isdigit()]))
    return {
        "fake_quantize": types.get("FakeQuantize", 0),
        "int8_weight_constants": consts,
        "int8_weight_values": values,
    }


def prove_int8(ctx, path: Path) -> dict:
    from .proof import fail

    found = inspect_int8(path)
    if found["fake_quantize"] == 0 and found["int8_weight_constants"] == 0:
        raise fail(
            path,
            "openvino int8 ops",
            "no FakeQuantize layers and no int8/uint8 weight constants",
            "FakeQuantize layers or int8/uint8 weight constants",
        )
    return found


def layer_taps(ctx, artifact, module_names: list[str]) -> dict:
    """Module name -> ``op_name:0`` of its convolution/matmul (with the bias add) in the IR."""
    from .onnx import scope

    ov = _ov()
    model = ov.Core().read_model(str(ctx.staging / artifact.file))
    ops = [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul", "Add")
    ]
    out = {}
    for name in module_names:
        prefix = scope(name) + "/"
        mine = [op for op in ops if op.get_friendly_name().startswith(prefix)]
        if mine:
            out[name] = f"{mine[-1].get_friendly_name()}:0"
    return out


_OV_WEIGHTED = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")
_OV_LOW = {"i8", "u8", "i4", "u4"}


def int8_layers(path: Path) -> list[dict]:
    """Every convolution/matmul whose weight comes from a constant, with its weight count and whether the
    constant is stored in int8 (NNCF's compressed weights: Constant i8 -> Convert -> Subtract/Multiply) or
    quantized through a FakeQuantize, read from the IR."""
    ov = _ov()
    model = ov.Core().read_model(str(path))
    rows = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in _OV_WEIGHTED:
            continue
        node, low, fq, const = op.input(1).get_source_output().get_node(), False, False, None
        for _ in range(8):
            kind = node.get_type_name()
            if kind == "Constant":
                const = node
                low |= node.get_output_element_type(0).get_type_name() in _OV_LOW
                break
            fq |= kind == "FakeQuantize"
            if node.get_input_size() == 0:
                break
            node = node.input(0).get_source_output().get_node()
        if const is None:
            continue  # activation x activation
        shape = list(const.get_output_shape(0))
        rows.append(
            {
                "layer": op.get_friendly_name(),
                "op": op.get_type_name(),
                "params": int(np.prod(shape)) if shape else 1,
                "int8": low or fq,
            }
        )
    return rows


def is_transformer(model) -> bool:
    """A model with attention, LayerNorm or GELU: NNCF's transformer preset applies."""
    import torch

    kinds = (torch.nn.MultiheadAttention, torch.nn.LayerNorm, torch.nn.GELU, torch.nn.TransformerEncoderLayer)
    return any(isinstance(m, kinds) for m in model.modules())


def _ignored(ctx, fp32, modules) -> list[str]:
    """Regex patterns for the IR's ops of the PyTorch ``modules``: the ONNX node names they came from
    (an IR converted from ONNX keeps them as name prefixes), or the ``__module.NAME/`` scope of an IR
    converted from PyTorch directly."""
    import re

    patterns = [rf"^__module\.{re.escape(m)}(/|\.)" for m in modules]
    onnx_art = ctx.fp32("onnx")
    if onnx_art is not None:
        from .onnx import module_nodes

        patterns += [rf"^{re.escape(n)}(/|$)" for n in module_nodes(ctx.staging / onnx_art.file, modules)]
    return patterns
