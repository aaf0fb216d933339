"""ONNX: ``torch.onnx.export`` (opset >= 17, dynamic batch on every tensor, the manifest's names),
the full checker, preprocessing and labels in ``metadata_props``, and a ``test_data_set_0/``;
int8 through ``onnxruntime.quantization.quantize_static``.

The model is serialised to memory and written from Python (a full disk is an
``OSError``).  int8 candidates differ in calibration method and in the
quantized format ORT runs fastest here: QDQ or QOperator, uint8 or int8
activations, per-channel or per-tensor weights.  Softmax, Sigmoid and Tanh
stay fp32 (uint8 probabilities would tie the top classes).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..bundle.writer import write_bytes
from ..errors import ConfigError, ExportError, first_line

FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model.int8.onnx"
TEST_DATA_DIR = "onnx/test_data_set_0"
METHODS = ("minmax", "percentile", "entropy")
OP_TYPES = [
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "MaxPool",
    "GlobalAveragePool",
    "AveragePool",
    "Concat",
    "Relu",
    "Clip",
]


def export(ctx) -> list:
    """The TorchScript-based exporter first (fast); the dynamo exporter when it fails or when its graph
    does not honour a dynamic dim (it bakes sizes it traced into reshapes, e.g. nn.MultiheadAttention)."""
    import onnx

    fallback = ""
    try:
        proto, exporter = _torchscript_export(ctx), "torch.onnx (torchscript)"
        fallback = _dims_problem(ctx, proto)
    except ExportError as exc:
        fallback = str(exc)
    if fallback:
        ctx.say(f"ONNX: the TorchScript-based exporter {fallback[:160]}; trying the dynamo exporter")
        try:
            proto, exporter = _dynamo_export(ctx), "torch.onnx (dynamo)"
        except ExportError as exc:
            raise ExportError(
                f"{exc} (the TorchScript-based exporter also failed: {fallback[:200]})"
            ) from None
        problem = _dims_problem(ctx, proto)
        if problem:
            raise ExportError(f"ONNX (dynamo exporter): {problem}")
    for key, value in ctx.metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "edgeport"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"exported ONNX model fails onnx.checker full check: {first_line(exc)}") from None
    _check_dynamic(proto, ctx)
    write_bytes(ctx.staging, FILE, proto.SerializeToString())
    extra = _test_data(ctx)
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    details = {
        "opset": opsets.get("ai.onnx", ctx.config.opset),
        "ir_version": proto.ir_version,
        "exporter": exporter,
        "ops": sorted({n.op_type for n in proto.graph.node}),
    }
    if fallback:
        details["exporter_fallback"] = f"torchscript-based exporter: {fallback[:300]}"
    if ctx.test_io is not None:
        details["test_data"] = f"{TEST_DATA_DIR}/ ({len(next(iter(ctx.test_io[0].values())))} samples)"
    return [ctx.artifact("onnx", "fp32", FILE, extra, details)]


def _torchscript_export(ctx):
    import onnx

    sig = ctx.signature
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), no_fastpath():
            warnings.simplefilter("ignore")
            # The TorchScript-based exporter: ~10x faster than dynamo here, same graphs for most models.
            torch.onnx.export(
                ctx.model.eval(),
                ctx.example,
                buf,
                input_names=sig.input_names,
                output_names=sig.output_names,
                opset_version=ctx.config.opset,
                dynamic_axes=ctx.dynamic_axes(),
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX export failed (opset {ctx.config.opset}): {first_line(exc)}") from None
    return onnx.load_from_string(buf.getvalue())


def _dynamo_export(ctx):
    sig = ctx.signature
    opset = max(18, ctx.config.opset)  # the dynamo exporter's oldest opset
    try:
        with warnings.catch_warnings(), torch.no_grad(), no_fastpath(), _quiet():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                ctx.model.eval(),
                ctx.example,
                input_names=sig.input_names,
                output_names=sig.output_names,
                opset_version=opset,
                dynamic_shapes=ctx.torch_dims(),
                dynamo=True,
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"ONNX export with the dynamo exporter failed (opset {opset}): {first_line(exc)}"
        ) from None
    return program.model_proto


@contextlib.contextmanager
def no_fastpath():
    """nn.MultiheadAttention / TransformerEncoderLayer on their reference path: the fused eval fast path
    (``aten::_transformer_encoder_layer_fwd``) has no ONNX export and zeroes padded positions."""
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def _dims_problem(ctx, proto) -> str:
    """Run the graph with onnxruntime at every dynamic dim's min, middle and max against the eager model;
    a one-line description of the first dim it does not honour ("" when it honours them all)."""
    import onnxruntime as ort

    from ..specs import random_feeds

    points = ctx.signature.dim_points()
    if not points:
        return ""
    ort.set_default_logger_severity(4)  # its kernel errors become our one-line reason, not stderr noise
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        return f"wrote a graph onnxruntime cannot load ({first_line(exc)})"
    names = ctx.signature.input_names
    for values in points:
        feeds = random_feeds(ctx.signature, 2, seed=7, values=values)
        where = ", ".join(f"{k}={v}" for k, v in values.items() if k in ctx.signature.free_dims)
        try:
            got = sess.run(None, feeds)
        except Exception as exc:  # noqa: BLE001
            return f"wrote a graph that fails at {where} ({first_line(exc)[:160]})"
        with torch.no_grad(), no_fastpath():
            from ..runtime._torch_common import outputs_to_dict

            ref = outputs_to_dict(
                ctx.model(*[torch.from_numpy(feeds[n]) for n in names]), ctx.signature.output_names, "torch"
            )
        for (name, r), o in zip(ref.items(), got):
            r = r.numpy()
            if r.shape != o.shape or not np.allclose(
                o, r, atol=1e-3 * max(1.0, float(np.abs(r).max())), rtol=1e-3
            ):
                return f"wrote a graph that does not honour {where} (output {name!r}: shape {list(o.shape)} vs {list(r.shape)})"
    return ""


def _check_dynamic(proto, ctx) -> None:
    for t in proto.graph.input:
        axes = ctx.dynamic_axes().get(t.name, {})
        dims = t.type.tensor_type.shape.dim
        for axis, name in axes.items():
            if axis < len(dims) and not dims[axis].dim_param:
                raise ExportError(
                    f"exported ONNX input {t.name!r} has a fixed size on axis {axis}; expected the dynamic dim {name}"
                )


def _test_data(ctx) -> list[str]:
    from onnx import numpy_helper

    extra = []
    if ctx.test_io is not None:
        inputs, outputs = ctx.test_io
        for i, (name, arr) in enumerate(list(inputs.items()) + list(outputs.items())):
            kind = "input" if i < len(inputs) else "output"
            k = i if i < len(inputs) else i - len(inputs)
            rel = f"{TEST_DATA_DIR}/{kind}_{k}.pb"
            write_bytes(
                ctx.staging, rel, numpy_helper.from_array(np.ascontiguousarray(arr), name).SerializeToString()
            )
            extra.append(rel)
    return extra


def metadata_props(preprocessing: dict | None, labels: list[str]) -> dict[str, str]:
    return {
        "edgeport.preprocessing": json.dumps(preprocessing, sort_keys=True),
        "edgeport.labels": json.dumps(list(labels)),
    }


# --------------------------------------------------------------------------- int8


def vnni() -> bool:
    """Whether this CPU has VNNI: without it, u8 x s8 products saturate int16 (ORT's reduce_range fixes that)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read(200_000)
    except OSError:
        return True
    return "avx512_vnni" in flags or "avx_vnni" in flags or "asimddp" in flags or " dotprod" in flags


def int8_candidates(method: str, ctx=None) -> list[tuple[str, dict]]:
    """Accuracy candidates (calibration methods, QDQ u8s8 per-channel) plus format variants of the first.

    Without VNNI, x86 int8 kernels can saturate (u8 x s8 pairs summed in int16), so the candidates then
    use 7-bit weights (``reduce_range``) and one variant keeps the full range.
    """
    methods = METHODS if method == "auto" else (method,)
    rr = not vnni()
    base = {"reduce_range": rr}
    cands = [(f"{m}/qdq", {"method": m, **base}) for m in methods]
    m0 = methods[0]
    cands += [
        (f"{m0}/qoperator", {"method": m0, "quant_format": "qoperator", **base}),
        (f"{m0}/qdq-s8s8", {"method": m0, "activation": "int8", **base}),
        (f"{m0}/qdq-per-tensor", {"method": m0, "per_channel": False, **base}),
    ]
    if rr:
        cands.append((f"{m0}/qdq-full-range", {"method": m0, "reduce_range": False}))
    return cands


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def even_batch(n: int, batch_size: int) -> int:
    """The largest batch size <= ``batch_size`` that divides ``n`` (ORT's histogram calibrators stack
    per-batch arrays and fail on a short last batch)."""
    for b in range(min(batch_size, n), 0, -1):
        if n % b == 0:
            return b
    return 1


def _reader(calibration, batch_size: int):
    from onnxruntime.quantization import CalibrationDataReader

    batch_size = even_batch(len(calibration), batch_size)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = None

        def get_next(self):
            if self._it is None:
                self._it = calibration.batches(batch_size)
            item = next(self._it, None)
            return None if item is None else item[0]

        def rewind(self) -> None:
            self._it = None

    return Reader()


def quantize(
    ctx,
    fp32,
    calibration,
    out_rel: str,
    *,
    method: str = "minmax",
    quant_format: str = "qdq",
    per_channel: bool = True,
    activation: str = "uint8",
    reduce_range: bool = False,
    float_modules: tuple[str, ...] = (),
) -> tuple[list[str], dict]:
    """``float_modules``: PyTorch module names whose nodes stay float (``nodes_to_exclude``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    table = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}  # fmt: skip
    if method not in table:
        raise ConfigError(f"ONNX calibration method must be one of {', '.join(table)}, got {method!r}")
    fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[quant_format]
    act = QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8
    extra = {"WeightSymmetric": True, "ActivationSymmetric": activation == "int8"}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    out = ctx.path(out_rel)
    excluded = module_nodes(ctx.staging / fp32.file, float_modules) if float_modules else []
    with _quiet():
        try:
            quantize_static(
                str(ctx.staging / fp32.file),
                str(out),
                _reader(calibration, ctx.calibration.batch_size),
                quant_format=fmt,
                op_types_to_quantize=OP_TYPES,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=act,
                weight_type=QuantType.QInt8,
                calibrate_method=table[method],
                nodes_to_exclude=excluded,
                extra_options=extra,
            )
        except Exception as exc:  # noqa: BLE001
            raise ExportError(
                f"ONNX int8 quantization ({method}, {quant_format}) failed: {first_line(exc)}"
            ) from None
    return [out_rel], {
        "quantizer": "onnxruntime.quantization.quantize_static",
        "calibration_method": method,
        "quant_format": quant_format.upper(),
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "activation_type": activation,
        "weight_type": "int8",
        "op_types": OP_TYPES,
        "float_modules": list(float_modules),
        "nodes_excluded": len(excluded),
    }


def inspect_int8(path: Path) -> dict:
    """Counts of Q/DQ and QLinear* nodes and of int8/uint8 weight initializers, read from the file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in model.graph.node)
    int8 = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    weights = [t for t in model.graph.initializer if t.data_type in int8 and len(t.dims) >= 2]
    return {
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "qlinear_ops": sum(
            c for op, c in ops.items() if op.startswith(("QLinear", "MatMulInteger", "ConvInteger"))
        ),
        "int8_weight_initializers": len(weights),
        "int8_weight_values": int(sum(int(np.prod(t.dims)) for t in weights)),
    }


def prove_int8(ctx, path: Path) -> dict:
    from .proof import fail

    found = inspect_int8(path)
    if found["quantize_linear"] + found["dequantize_linear"] + found["qlinear_ops"] == 0:
        raise fail(
            path,
            "onnx quantize nodes",
            "no QuantizeLinear/DequantizeLinear or QLinear* nodes",
            "at least one",
        )
    if found["int8_weight_initializers"] == 0:
        raise fail(path, "onnx int8 weights", "no int8/uint8 weight initializers (rank >= 2)", "at least one")
    return found


def scope(module_name: str) -> str:
    """torch.onnx's node-name scope of a module: ``a.b.c`` -> ``/a/a.b/a.b.c``."""
    parts = module_name.split(".")
    return "".join("/" + ".".join(parts[: i + 1]) for i in range(len(parts)))


def layer_taps(ctx, artifact, module_names: list[str]) -> dict:
    """Module name -> the output tensor of its Conv/Gemm/MatMul node in the (int8) graph."""
    import onnx

    model = onnx.load(str(ctx.staging / artifact.file), load_external_data=False)
    weighted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul", *QUANTIZED_WEIGHTED)]
    dequantized = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    relu_after = _relu_after(model)
    fp32_relu_after = None
    out = {}
    for name in module_names:
        prefix = scope(name) + "/"
        node = next((n for n in weighted if n.name.startswith(prefix)), None)
        if node is None:
            continue
        # A QOperator node's output is quantized: tap its DequantizeLinear where there is one,
        # else the quantized tensor itself (see dequantize_taps).
        tensor = dequantized.get(node.output[0], node.output[0])
        label = name
        if node.op_type in QUANTIZED_WEIGHTED and tensor not in relu_after:
            if fp32_relu_after is None:  # the quantizer folds a following ReLU into the output range
                fp32 = ctx.fp32("onnx") if hasattr(ctx, "fp32") else None
                fp32_model = (
                    onnx.load(str(ctx.staging / fp32.file), load_external_data=False) if fp32 else None
                )
                fp32_relu_after = _relu_scopes(fp32_model) if fp32_model is not None else set()
            if scope(name) in fp32_relu_after:
                label = f"{name}+relu"
        out[label] = tensor
    return out


def _relu_after(model) -> set[str]:
    """Tensors consumed by a Relu."""
    return {n.input[0] for n in model.graph.node if n.op_type == "Relu"}


def _relu_scopes(model) -> set[str]:
    """Scopes of the weighted nodes whose output goes straight into a Relu in ``model``."""
    relu_in = _relu_after(model)
    return {
        n.name.rsplit("/", 1)[0]
        for n in model.graph.node
        if n.op_type in ("Conv", "Gemm", "MatMul") and n.output[0] in relu_in
    }


# QOperator ops with weights, and the input positions of their output scale and zero point.
QUANTIZED_WEIGHTED = {"QLinearConv": (6, 7), "QLinearMatMul": (6, 7), "QGemm": (7, 8)}


def dequantize_taps(ctx, artifact, names: dict, taps: dict) -> dict:
    """Tapped quantized outputs of QOperator nodes (QLinearConv, QLinearMatMul, QGemm) back to float:
    ``(q - y_zero_point) * y_scale``, with both read from the graph's initializers.  ``names`` is the
    label -> tensor map :func:`layer_taps` gave for these taps."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(ctx.staging / artifact.file), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    by_output = {n.output[0]: n for n in model.graph.node if n.op_type in QUANTIZED_WEIGHTED}
    out = {}
    for label, value in taps.items():
        node = by_output.get(names.get(label, ""))
        if node is None or value.dtype not in (np.uint8, np.int8):
            out[label] = value
            continue
        i_scale, i_zero = QUANTIZED_WEIGHTED[node.op_type]
        if len(node.input) <= i_scale:
            continue  # a float-output QGemm would not be here (its dtype is float)
        scale = inits.get(node.input[i_scale])
        zero = inits.get(node.input[i_zero]) if len(node.input) > i_zero else None
        if scale is None:
            continue  # a scale computed at run time: nothing to compare against
        zp = numpy_helper.to_array(zero).astype(np.float32) if zero is not None else np.float32(0)
        out[label] = (value.astype(np.float32) - zp) * numpy_helper.to_array(scale).astype(np.float32)
    return out


_WEIGHTED = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "ConvInteger": 1, "MatMulInteger": 1}
_QWEIGHTED = {"QLinearConv": 3, "QLinearMatMul": 3, "QGemm": 3, "MatMulNBits": 1}
_PASS_THROUGH = ("DequantizeLinear", "Transpose", "Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze")


def int8_layers(path: Path) -> list[dict]:
    """Every weighted node (its weight a constant) with its weight count and whether it is stored in int8,
    read from the file: a QDQ node's weight through its DequantizeLinear, a QOperator node's directly."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    low = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4, onnx.TensorProto.UINT4}

    def weight(name: str):
        for _ in range(6):
            if name in inits:
                return inits[name]
            node = producer.get(name)
            if node is None or node.op_type not in _PASS_THROUGH:
                return None
            name = node.input[0]
        return None

    rows = []
    for n in model.graph.node:
        at = _WEIGHTED.get(n.op_type, _QWEIGHTED.get(n.op_type))
        if at is None or len(n.input) <= at:
            continue
        w = weight(n.input[at])
        if w is None:  # activation x activation (attention scores): no weights to quantize
            continue
        rows.append(
            {
                "layer": n.name or n.output[0],
                "op": n.op_type,
                "params": int(np.prod(w.dims)) if len(w.dims) else 1,
                "int8": w.data_type in low or n.op_type == "MatMulNBits",
            }
        )
    return rows


def module_nodes(path, modules) -> list[str]:
    """Names of the graph's nodes that belong to the PyTorch ``modules`` (and their children): by name
    scope for the TorchScript-based exporter (``/a/a.b/...``), by ``pkg.torch.onnx.name_scopes``
    metadata for the dynamo exporter."""
    import ast

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    scopes = [scope(m) + "/" for m in modules]
    wanted = set(modules)
    out = []
    for n in model.graph.node:
        if any(n.name.startswith(sc) for sc in scopes):
            out.append(n.name)
            continue
        meta = {p.key: p.value for p in n.metadata_props}
        raw = meta.get("pkg.torch.onnx.name_scopes")
        if raw:
            try:
                names = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                continue
            if any(
                m in wanted or any(m.startswith(w + ".") for w in wanted) for m in names if isinstance(m, str)
            ):
                out.append(n.name)
    # the activations next to a float layer stay float with it: ORT quantizes a Relu/Clip with its
    # neighbour's parameters, and beside a float layer that gave garbage (a test plants exactly this)
    chosen = set(out)
    produced = {o for n in model.graph.node if n.name in chosen for o in n.output}
    consumed = {i for n in model.graph.node if n.name in chosen for i in n.input}
    for n in model.graph.node:
        if n.op_type in _FUSED_ACT and n.name not in chosen:
            if (n.input and n.input[0] in produced) or any(o in consumed for o in n.output):
                out.append(n.name)
    return out


_FUSED_ACT = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh")
