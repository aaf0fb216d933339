"""Proof of quantization: inspect an int8 artifact's file and fail loudly if it is not int8.

The tutorial this project grew from shipped an "optimized" model in which
nothing was quantized.  These checks read the file itself (never the object
that produced it), so such a model cannot pass.  Each check that fails raises
:class:`ExportError` naming the check, what was found and what was expected.

``inspect_*`` functions only report what they see; ``prove_*`` functions also
enforce it.  The OpenVINO inspector parses the IR XML directly and needs
neither openvino nor torch.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from ..errors import ExportError

# Each int8 artifact must be at most this fraction of its fp32 sibling.
MAX_SIZE_RATIO = 0.30

_INT8_TYPES = {"i8", "u8"}


def _fail(path: Path, check: str, seen: str, expected: str) -> ExportError:
    return ExportError(
        f"int8 proof failed for {path}: check '{check}' - found {seen}, expected {expected}; "
        "the quantizer did not produce an int8 model (re-run the export with --int8, "
        "or report the quantizer settings that produced this file)"
    )


def inspect_onnx(path: str | os.PathLike) -> dict:
    """Counts of Q/DQ and QLinear* nodes and of int8/uint8 weight initializers."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in model.graph.node)
    int8 = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    weights = [t for t in model.graph.initializer if t.data_type in int8 and len(t.dims) >= 2]
    return {
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "qlinear_ops": sum(
            c
            for op, c in ops.items()
            if op.startswith("QLinear")
            or op.startswith("MatMulInteger")
            or op.startswith("ConvInteger")
            or op == "DynamicQuantizeLinear"
        ),
        "int8_weight_initializers": len(weights),
        "int8_weight_values": int(sum(int(_numel(t.dims)) for t in weights)),
    }


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def prove_onnx(path: str | os.PathLike) -> dict:
    path = Path(path)
    found = inspect_onnx(path)
    has_qdq = found["quantize_linear"] + found["dequantize_linear"] > 0
    if not (has_qdq or found["qlinear_ops"] > 0):
        raise _fail(
            path,
            "onnx quantize nodes",
            "no QuantizeLinear/DequantizeLinear or QLinear* nodes",
            "at least one",
        )
    if found["int8_weight_initializers"] == 0:
        raise _fail(
            path, "onnx int8 weights", "no int8/uint8 weight initializers (rank >= 2)", "at least one"
        )
    return found


def _ir_bin_path(xml_path: Path) -> Path:
    return xml_path.with_suffix(".bin")


def inspect_openvino(path: str | os.PathLike) -> dict:
    """FakeQuantize count and int8/uint8 constants of an IR ``.xml`` (parsed directly)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ExportError(f"cannot read OpenVINO IR {path}: {exc}; re-export the bundle") from None
    types: Counter = Counter()
    int8_consts = int8_values = 0
    for layer in root.iter("layer"):
        kind = layer.get("type", "")
        types[kind] += 1
        if kind == "Const":
            data = layer.find("data")
            if data is not None and data.get("element_type") in _INT8_TYPES:
                dims = [d.text for d in layer.iter("dim")]
                if len(dims) >= 2:
                    int8_consts += 1
                    int8_values += _numel(int(d) for d in dims if d and d.isdigit())
    return {
        "fake_quantize": types.get("FakeQuantize", 0),
        "int8_weight_constants": int8_consts,
        "int8_weight_values": int8_values,
    }


def prove_openvino(path: str | os.PathLike) -> dict:
    path = Path(path)
    found = inspect_openvino(path)
    if found["fake_quantize"] == 0 and found["int8_weight_constants"] == 0:
        raise _fail(
            path,
            "openvino int8 ops",
            "no FakeQuantize layers and no int8/uint8 weight constants",
            "FakeQuantize layers or int8/uint8 weight constants",
        )
    return found


def inspect_torchscript(path: str | os.PathLike) -> dict:
    """Quantized ops called by a TorchScript file's (inlined) forward graph."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ExportError(f"cannot load TorchScript {path}: {str(exc).splitlines()[0]}; re-export") from None
    kinds = Counter(node.kind() for node in module.inlined_graph.nodes())
    quantized = {k: c for k, c in kinds.items() if k.startswith("quantized::")}
    return {
        "quantized_linear": sum(c for k, c in quantized.items() if k.startswith("quantized::linear")),
        "quantized_ops": dict(sorted(quantized.items())),
        "quantize_per_tensor": kinds.get("aten::quantize_per_tensor", 0),
        "dropout": sum(c for k, c in kinds.items() if "dropout" in k),
    }


def prove_torchscript(path: str | os.PathLike) -> dict:
    path = Path(path)
    found = inspect_torchscript(path)
    if found["quantized_linear"] == 0:
        raise _fail(
            path, "torchscript quantized linear", "no quantized::linear calls in the graph", "at least one"
        )
    if found["dropout"]:
        raise _fail(path, "torchscript no dropout", f"{found['dropout']} dropout ops", "none")
    return found


def artifact_bytes(path: str | os.PathLike) -> int:
    """Size of an artifact; an OpenVINO ``.xml`` counts together with its ``.bin``."""
    path = Path(path)
    total = path.stat().st_size
    if path.suffix == ".xml" and _ir_bin_path(path).exists():
        total += _ir_bin_path(path).stat().st_size
    return total


def prove_size(
    int8_path: str | os.PathLike, fp32_path: str | os.PathLike, max_ratio: float = MAX_SIZE_RATIO
) -> float:
    """``int8 bytes / fp32 bytes``; :class:`ExportError` if above ``max_ratio``."""
    ratio = artifact_bytes(int8_path) / max(1, artifact_bytes(fp32_path))
    if ratio > max_ratio:
        raise _fail(
            Path(int8_path),
            "size",
            f"{ratio * 100:.1f}% of the fp32 artifact {fp32_path}",
            f"<= {max_ratio * 100:.0f}%",
        )
    return ratio


PROVERS = {"onnx": prove_onnx, "openvino": prove_openvino, "torchscript": prove_torchscript}


def prove(fmt: str, int8_path: str | os.PathLike, fp32_path: str | os.PathLike) -> dict:
    """Run every check for ``fmt``; returns what was found plus ``size_ratio``."""
    found = PROVERS[fmt](int8_path)
    found["size_ratio"] = round(prove_size(int8_path, fp32_path), 4)
    return found
