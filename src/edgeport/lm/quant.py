"""Weight-only quantization of a decoder, per format, with each tool's recommended defaults.

| format | int8 | int4 (group-wise) | embedding / LM head |
|---|---|---|---|
| ONNX Runtime | ``MatMulNBits`` 8-bit, blocks of ``group`` | ``MatMulNBits`` 4-bit symmetric, blocks of ``group`` | embedding fp32 (Gather untouched: the quantizer's default op set is MatMul); LM head quantized like every MatMul |
| OpenVINO | NNCF ``compress_weights`` INT8_ASYM, per channel | NNCF INT4_ASYM, ``group`` (ratio 1.0) | NNCF default: embedding and LM head int8 asym per channel (backup precision) |
| ExecuTorch | torchao 8da8w: int8 per-channel weights, dynamic int8 activations | torchao 8da4w: int4 symmetric groups, dynamic int8 activations | embedding fp32 (optimum-executorch's default); LM head quantized like every Linear |

ExecuTorch's XNNPACK runs int8/int4 linear layers as dynamically quantized
(int8 activations): it has no weight-only int8/int4 kernel, so the record says so.
What each artifact got is recorded in the manifest (``generation.quantization``).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ExportError


def group_size(model, wanted: int) -> int:
    """The largest power of two <= ``wanted`` that divides every Linear's input features (at least 16)."""
    import torch

    common = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            common = math.gcd(common, m.in_features)
    g = 1 << int(math.log2(max(16, wanted)))
    while g > 16 and common % g:
        g //= 2
    return g


def onnx_weight_only(fp32_path, out_path, bits: int, group: int, accuracy_level: int | None) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    try:
        q = MatMulNBitsQuantizer(
            model, bits=bits, block_size=group, is_symmetric=True, accuracy_level=accuracy_level
        )
        q.process()
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"ONNX Runtime MatMulNBits quantization ({bits}-bit) failed: {str(exc)[:200]}"
        ) from None
    out = q.model.model
    big = sum(t.ByteSize() for t in out.graph.initializer) > 1_800_000_000  # protobuf's 2 GB limit
    onnx.save(
        out,
        str(out_path),
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=f"{Path(out_path).name}.data",
    )
    inits = {i.name for i in out.graph.initializer}
    nbits = sum(n.op_type == "MatMulNBits" for n in out.graph.node)
    left = sum(
        n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits for n in out.graph.node
    )
    head = _onnx_head(out)
    return {
        "method": f"MatMulNBits {bits}-bit symmetric, blocks of {group}",
        "bits": bits,
        "group_size": group,
        "symmetric": True,
        "embedding": "fp32 (Gather is outside the quantizer's default MatMul op set)",
        "lm_head": head,
        "tool": f"onnxruntime.quantization.matmul_nbits_quantizer, accuracy_level {accuracy_level or 0}",
        "note": f"{nbits} MatMulNBits nodes; {left} MatMul/Gemm with constant weights left in fp32",
    }


def _onnx_head(model) -> str:
    for n in model.graph.node:
        if "logits" in n.output:
            return f"{n.op_type} ({'quantized' if n.op_type == 'MatMulNBits' else 'fp32'})"
    return "unknown"


def openvino_weight_only(model, bits: int, group: int) -> tuple[object, dict]:
    import nncf

    mode = nncf.CompressWeightsMode.INT8_ASYM if bits == 8 else nncf.CompressWeightsMode.INT4_ASYM
    kw = {} if bits == 8 else {"group_size": group, "ratio": 1.0}
    import contextlib
    import io
    import logging

    nncf.set_log_level(logging.ERROR)  # its progress bars and tables would drown the CLI's output
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            out = nncf.compress_weights(model, mode=mode, **kw)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"NNCF compress_weights ({mode.value}) failed: {str(exc)[:200]}") from None
    return out, {
        "method": f"NNCF {mode.value}"
        + (f", groups of {group}, ratio 1.0" if bits == 4 else ", per channel"),
        "bits": bits,
        "group_size": group if bits == 4 else None,
        "symmetric": False,
        "embedding": "int8_asym per channel" + (" (NNCF backup precision)" if bits == 4 else ""),
        "lm_head": "int8_asym per channel" + (" (NNCF backup precision)" if bits == 4 else ""),
        "tool": f"nncf {nncf.__version__} compress_weights",
        "note": constant_bytes(out),
    }


def constant_bytes(model) -> str:
    """Weight bytes by element type in an OpenVINO model, e.g. 'u4 1.2 MB, u8 0.3 MB, f32 0.1 MB'."""
    sizes: dict[str, int] = {}
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            t = op.get_output_element_type(0)
            n = int(math.prod(op.get_output_shape(0)))
            sizes[t.get_type_name()] = sizes.get(t.get_type_name(), 0) + n * t.bitwidth // 8
    return ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if v)


def executorch_quantizer(bits: int, group: int):
    """(a function quantizing a model in place with torchao, its record)."""
    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    gran = PerAxis(0) if bits == 8 else PerGroup(group)
    config = Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int8 if bits == 8 else torch.int4, weight_granularity=gran
    )

    def run(model) -> None:
        quantize_(model, config, filter_fn=lambda m, _fqn: isinstance(m, torch.nn.Linear))

    name = "8da8w" if bits == 8 else "8da4w"
    return run, {
        "method": f"torchao {name}: int{bits} symmetric weights "
        + ("per channel" if bits == 8 else f"in groups of {group}")
        + ", dynamic int8 activations (XNNPACK has no weight-only int8/int4 linear kernel)",
        "bits": bits,
        "group_size": None if bits == 8 else group,
        "symmetric": True,
        "embedding": "fp32 (optimum-executorch's default: no --qembedding)",
        "lm_head": f"{name} like every Linear",
        "tool": "torchao Int8DynamicActivationIntxWeightConfig + XnnpackPartitioner",
    }
