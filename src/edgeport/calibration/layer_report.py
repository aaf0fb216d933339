"""Per-layer error of each int8 artifact against the fp32 PyTorch model.

For every weighted layer (Linear/Conv) the int8 artifact's output tensor is
compared with the fp32 module's output on the same validation images: SQNR in
dB (10·log10(Σref² / Σ(ref-q)²)) and max abs error.  Rows are named by
PyTorch module names (``linear_stack.0``); the last row, ``output``, is the
model output.  Errors accumulate, so later layers show the cost of all
earlier ones.

Collecting needs torch and the format's runtime; :func:`format_layer_report`
needs neither (``edgeport inspect`` uses it).
"""

from __future__ import annotations

import math
import os

import numpy as np

WEIGHTED_ONNX = ("Gemm", "MatMul", "Conv")
WEIGHTED_OV = ("MatMul", "Convolution")


def error_stats(ref: np.ndarray, out: np.ndarray) -> dict:
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    out = np.asarray(out, np.float64).reshape(len(out), -1)
    noise = float(np.sum((ref - out) ** 2))
    signal = float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)
    return {
        "sqnr_db": round(sqnr, 2) if math.isfinite(sqnr) else None,
        "max_abs_error": float(np.max(np.abs(ref - out))) if ref.size else 0.0,
    }


def torch_layer_outputs(model, x: np.ndarray) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Weighted-layer names in call order, their fp32 outputs, and the model output."""
    import torch
    from torch import nn

    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    outs: dict[str, np.ndarray] = {}

    def hook(mod, _inp, out):
        name = names[mod]
        if name not in outs:
            order.append(name)
        outs[name] = out.detach().float().numpy()

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    ]
    try:
        with torch.no_grad():
            y = model.eval()(torch.from_numpy(x)).float().numpy()
    finally:
        for h in handles:
            h.remove()
    return order, outs, y


def _match(order: list[str], candidates: list[tuple[str | None, object]]) -> dict[str, object]:
    """Map torch layer names to graph tensors: by weight name when it names a layer, else by order."""
    by_name = {hint: t for hint, t in candidates if hint in order}
    if len(by_name) == len(order):
        return by_name
    if len(candidates) == len(order):
        return {name: t for name, (_hint, t) in zip(order, candidates, strict=True)}
    return by_name


def _onnx_outputs(path: str | os.PathLike, order: list[str], x: np.ndarray) -> tuple[dict, np.ndarray]:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}

    def weight_name(node) -> str | None:
        name = node.input[1] if len(node.input) > 1 else ""
        while (
            name not in inits
            and name in producers
            and producers[name].op_type in ("DequantizeLinear", "Transpose", "QuantizeLinear")
        ):
            name = producers[name].input[0]
        for suffix in ("_quantized", "_DequantizeLinear", ".weight"):
            name = name.removesuffix(suffix)
        return name

    cands = [(weight_name(n), n.output[0]) for n in model.graph.node if n.op_type in WEIGHTED_ONNX]
    mapping = _match(order, cands)
    existing = {o.name for o in model.graph.output}
    for tensor in mapping.values():
        if tensor not in existing:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
            )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x}), strict=True))
    return {layer: res[t] for layer, t in mapping.items()}, res[names[0]]


def _ov_outputs(xml: str | os.PathLike, order: list[str], x: np.ndarray) -> tuple[dict, np.ndarray]:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    cands = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_OV:
            continue
        port = op.output(0)
        consumers = list(port.get_target_inputs())
        if len(consumers) == 1 and consumers[0].get_node().get_type_name() == "Add":
            port = consumers[0].get_node().output(0)  # include the bias, as torch does
        hint = next(
            (n for n in order if f"/{n}/" in op.get_friendly_name() or f"{n}." in op.get_friendly_name()),
            None,
        )
        cands.append((hint, port))
    mapping = _match(order, cands)
    n_out = len(model.outputs)
    model.add_outputs(list(mapping.values()))
    compiled = ov.Core().compile_model(model, "CPU")
    res = compiled.create_infer_request().infer({0: x})
    outs = [res[compiled.outputs[i]] for i in range(len(compiled.outputs))]
    return {layer: outs[n_out + i] for i, layer in enumerate(mapping)}, outs[0]


def _torch_int8_outputs(quantized, order: list[str], x: np.ndarray) -> tuple[dict, np.ndarray]:
    import torch

    mods = dict(quantized.named_modules())
    outs: dict[str, np.ndarray] = {}
    handles = []
    for name in order:
        mod = mods.get(f"module.{name}", mods.get(name))
        if mod is not None:
            handles.append(
                mod.register_forward_hook(
                    lambda _m, _i, o, n=name: outs.__setitem__(
                        n, o.dequantize().numpy() if o.is_quantized else o.numpy()
                    )
                )
            )
    try:
        with torch.no_grad():
            y = quantized(torch.from_numpy(x)).numpy()
    finally:
        for h in handles:
            h.remove()
    return outs, y


def layer_errors(model, fmt: str, artifact, x: np.ndarray) -> list[dict]:
    """Rows ``{"layer", "sqnr_db", "max_abs_error"}`` for one int8 artifact.

    ``artifact``: a file path (onnx, openvino) or the eager int8 module (torchscript).
    """
    order, ref, ref_y = torch_layer_outputs(model, x)
    fn = {"onnx": _onnx_outputs, "openvino": _ov_outputs, "torchscript": _torch_int8_outputs}[fmt]
    got, y = fn(artifact, order, x)
    rows = [{"layer": name, **error_stats(ref[name], got[name])} for name in order if name in got]
    rows.append({"layer": "output", **error_stats(ref_y, y)})
    return rows


# ------------------------------------------------------------------ printing (torch-free)


def _report_of(obj) -> dict | None:
    if hasattr(obj, "manifest"):
        obj = obj.manifest
    if hasattr(obj, "layer_report"):
        return obj.layer_report
    if isinstance(obj, dict) and "formats" not in obj:
        return obj.get("layer_report")
    return obj


def format_layer_report(obj) -> str:
    """A text table of the layer report in a Bundle, Manifest, manifest dict or report dict."""
    report = _report_of(obj)
    if not report or not report.get("formats"):
        return "no int8 layer report in this bundle (export with --int8)"
    lines = [
        f"int8 per-layer error vs fp32 PyTorch ({report.get('images', '?')} {report.get('split', '')} images)",
        f"{'artifact':<18} {'layer':<22} {'SQNR dB':>9} {'max abs err':>12}",
    ]
    for fmt, rows in report["formats"].items():
        for row in rows:
            sq = row.get("sqnr_db")
            sq_s = "inf" if sq is None else f"{sq:.2f}"
            lines.append(f"{fmt + '/int8':<18} {row['layer']:<22} {sq_s:>9} {row['max_abs_error']:>12.4g}")
    return "\n".join(lines)
