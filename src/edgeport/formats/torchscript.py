"""TorchScript: trace in eval mode and freeze (fp32); FX graph-mode static PTQ on x86 (int8).

TorchScript and ``torch.ao.quantization`` are deprecated upstream; both are
kept to this module.  Archives are serialised to memory and written from
Python, so a full disk is an ``OSError`` (one line), never a native abort.

int8: the fp32 model is prepared with FX (per-channel int8 weights, uint8
activations; ``reduce_range`` only on CPUs without VNNI), calibrated on the
calibration split, converted, then traced and frozen.  Softmax stays in fp32:
uint8 probabilities (steps of 1/256) would tie the top classes.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from ..bundle.writer import write_bytes
from ..errors import ConfigError, ExportError, first_line

FILE = "torchscript/model.pt"
MOBILE_FILE = "torchscript/model.ptl"
INT8_FILE = "torchscript/model.int8.pt"
ENGINE = "x86"
OBSERVERS = {"minmax": "MinMaxObserver", "histogram": "HistogramObserver"}


def _trace_freeze(model: nn.Module, example: tuple) -> torch.jit.ScriptModule:
    # The tracer writes cuDNN's TF32 switch into every aten::_convolution as a constant: traced with
    # torch's default (True), the artifact ran its convolutions in TF32 on a GPU whatever the runtime
    # flags said (a 224-px MobileNetV3-small: 4.7e-3 from PyTorch on an H200, eager 5.7e-6).  fp32 is
    # traced as fp32; CPUs ignore the flag.
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings and jit deprecation notices
            with torch.no_grad():
                traced = torch.jit.trace(model, example, check_trace=False, strict=False)
            return torch.jit.freeze(traced.eval())
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _save(module, rel: str, ctx) -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated upstream; used on purpose
        torch.jit.save(module, buf)
    write_bytes(ctx.staging, rel, buf.getvalue())


def export(ctx) -> list:
    model = ctx.model.eval()
    try:
        frozen = _trace_freeze(model, ctx.example)
    except Exception as exc:  # noqa: BLE001 - tracing fails in many ways
        raise ExportError(f"TorchScript trace of the model failed: {first_line(exc)}") from None
    kinds = [n.kind() for n in frozen.graph.nodes()]
    dropout = sorted({k for k in kinds if "dropout" in k.lower()})
    if dropout:
        raise ExportError(f"TorchScript graph still holds {', '.join(dropout)} after freezing in eval mode")
    _save(frozen, FILE, ctx)
    details = {
        "method": "trace",
        "frozen": True,
        "ops": sorted({k for k in kinds if k.startswith("aten::")})[:200],
    }
    extra = []
    if ctx.config.mobile:
        details |= _mobile(frozen, ctx)
        extra.append(MOBILE_FILE)
    return [ctx.artifact("torchscript", "fp32", FILE, extra, details)]


def _mobile(frozen, ctx) -> dict:
    """The lite-interpreter file for PyTorch Mobile apps (the seed's Android app)."""
    from torch.utils.mobile_optimizer import optimize_for_mobile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = optimize_for_mobile(frozen)._save_to_buffer_for_lite_interpreter()
            optimized = True
        except Exception:  # noqa: BLE001 - torch builds without XNNPACK cannot optimize_for_mobile
            try:
                data = frozen._save_to_buffer_for_lite_interpreter()
            except Exception as exc:  # noqa: BLE001
                raise ExportError(
                    f"TorchScript mobile (lite interpreter) export failed: {first_line(exc)}"
                ) from None
            optimized = False
    write_bytes(ctx.staging, MOBILE_FILE, bytes(data))
    return {"mobile": MOBILE_FILE, "mobile_optimized": optimized}


# --------------------------------------------------------------------------- int8


def _vnni() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read(200_000)
    except OSError:
        return False
    return "avx512_vnni" in text or "avx_vnni" in text


def int8_candidates(method: str, ctx=None) -> list[tuple[str, dict]]:
    """torch.ao has no percentile/entropy observer: HistogramObserver (L2-optimal clipping) stands in."""
    if method == "auto":
        return [("histogram", {"observer": "histogram"}), ("minmax", {"observer": "minmax"})]
    return [
        (
            "minmax" if method == "minmax" else "histogram",
            {"observer": "minmax" if method == "minmax" else "histogram"},
        )
    ]


def _qconfig_mapping(observer: str, float_modules=()):
    import torch.ao.quantization as tq
    from torch.ao.quantization import get_default_qconfig_mapping

    if observer not in OBSERVERS:
        raise ConfigError(f"TorchScript observer must be one of {', '.join(OBSERVERS)}, got {observer!r}")
    act = getattr(tq, OBSERVERS[observer]).with_args(reduce_range=not _vnni())
    qconfig = tq.QConfig(activation=act, weight=tq.default_per_channel_weight_observer)
    mapping = get_default_qconfig_mapping(ENGINE).set_global(qconfig)
    for softmax in (nn.Softmax, torch.softmax, torch.nn.functional.softmax, "softmax"):
        mapping = mapping.set_object_type(softmax, None)
    for name in float_modules:  # a module-level None config keeps it (and its children) float
        mapping = mapping.set_module_name(name, None)
    return mapping


def quantize_module(
    model: nn.Module, example: tuple, batches, *, observer: str = "histogram", float_modules=()
) -> nn.Module:
    """A converted (int8) FX copy of ``model``; ``model`` itself is left untouched."""
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if ENGINE not in torch.backends.quantized.supported_engines:
        raise ExportError(
            f"torch quantized engine {ENGINE!r} is not available here ({torch.backends.quantized.supported_engines}); "
            "drop torchscript from --int8-formats"
        )
    torch.backends.quantized.engine = ENGINE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prepared = prepare_fx(
                copy.deepcopy(model).eval(), _qconfig_mapping(observer, float_modules), example
            )
        except Exception as exc:  # noqa: BLE001 - FX tracing fails on data-dependent control flow
            raise ExportError(
                f"TorchScript int8 needs an FX-traceable model, and tracing failed ({first_line(exc)}); "
                "leave torchscript out of --int8-formats"
            ) from None
        with torch.inference_mode():
            for feeds in batches:
                prepared(*feeds)
        return convert_fx(prepared).eval()


def quantize(
    ctx, fp32, calibration, out_rel: str, *, observer: str = "histogram", float_modules=()
) -> tuple[list[str], dict]:
    names = ctx.signature.input_names
    batches = (
        tuple(torch.from_numpy(f[n]) for n in names)
        for f, _ in calibration.batches(ctx.calibration.batch_size)
    )
    q = quantize_module(ctx.model, ctx.example, batches, observer=observer, float_modules=float_modules)
    try:
        frozen = _trace_freeze(q, ctx.example)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"TorchScript int8 trace/freeze failed: {first_line(exc)}") from None
    _save(frozen, out_rel, ctx)
    ctx.scratch.setdefault("torchscript_int8", {})[out_rel] = q
    return [out_rel], {
        "quantizer": "torch.ao.quantization FX graph mode (static PTQ)",
        "engine": ENGINE,
        "activation_observer": f"{OBSERVERS[observer]}(reduce_range={not _vnni()})",
        "weight_observer": "PerChannelMinMaxObserver(int8, symmetric)",
        "float_modules": list(float_modules),
    }


def inspect_int8(path: Path) -> dict:
    """Quantized ops called by the archive's (inlined) graph, read from the file itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(io.BytesIO(Path(path).read_bytes()), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"cannot load TorchScript {path}: {first_line(exc)}; re-export") from None
    kinds = Counter(node.kind() for node in module.inlined_graph.nodes())
    quantized = {k: c for k, c in kinds.items() if k.startswith("quantized::")}
    weighted = sum(c for k, c in quantized.items() if k.startswith(("quantized::linear", "quantized::conv")))
    return {
        "quantized_weighted_ops": weighted,
        "quantized_ops": dict(sorted(quantized.items())),
        "quantize_per_tensor": kinds.get("aten::quantize_per_tensor", 0),
        "dropout": sum(c for k, c in kinds.items() if "dropout" in k),
    }


def prove_int8(ctx, path: Path) -> dict:
    from .proof import fail

    found = inspect_int8(path)
    if found["quantized_weighted_ops"] == 0:
        raise fail(
            path, "torchscript quantized ops", "no quantized::linear/conv calls in the graph", "at least one"
        )
    if found["dropout"]:
        raise fail(path, "torchscript no dropout", f"{found['dropout']} dropout ops", "none")
    return found


def layer_outputs(ctx, artifact, feeds: dict, module_names: list[str]) -> tuple[dict, dict]:
    """(outputs, per-layer tensors) of the converted FX module the archive was traced from.

    A frozen TorchScript graph cannot be tapped; its FX source module can, and
    holds the same quantized modules under the same names.
    """
    q = ctx.scratch.get("torchscript_int8", {}).get(artifact.file)
    if q is None:
        return {}, {}
    mods = dict(q.named_modules())
    store, handles = {}, []
    for name in module_names:
        mod = mods.get(name)
        if mod is not None:
            label = f"{name}+relu" if "ReLU" in type(mod).__name__ else name  # fused conv/linear + ReLU
            handles.append(
                mod.register_forward_hook(
                    lambda _m, _i, o, k=label: store.__setitem__(
                        k, (o.dequantize() if o.is_quantized else o).float().numpy()
                    )
                )
            )
    try:
        with torch.inference_mode():
            y = q(*[torch.from_numpy(feeds[n]) for n in ctx.signature.input_names])
    finally:
        for h in handles:
            h.remove()
    from ..runtime._torch_common import outputs_to_dict

    outs = {k: v.numpy() for k, v in outputs_to_dict(y, ctx.signature.output_names, artifact.key).items()}
    return outs, store


_TS_FLOAT = ("aten::linear", "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::_convolution")


def int8_layers(path: Path) -> list[dict]:
    """Every linear/conv call of the archive's (frozen, inlined) graph: ``quantized::`` ones are int8;
    float ones count when their weight is a constant.  Weight counts come from the constants (packed int8
    weights are unpacked for their size)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(Path(path).read_bytes()), map_location="cpu")
    rows = []
    for i, node in enumerate(module.inlined_graph.nodes()):
        kind = node.kind()
        quantized = kind.startswith(("quantized::linear", "quantized::conv")) and "unpack" not in kind
        if not quantized and kind not in _TS_FLOAT:
            continue
        w = _constant(node, 1)
        if not quantized and not isinstance(w, torch.Tensor):
            continue  # activation x activation
        rows.append({"layer": f"{kind}#{i}", "op": kind, "params": _numel(w), "int8": quantized})
    return rows


def _constant(node, i: int):
    try:
        src = node.inputsAt(i).node()
        return src.output().toIValue() if src.kind() == "prim::Constant" else None
    except (RuntimeError, IndexError):
        return None


def _numel(w) -> int:
    if isinstance(w, torch.Tensor):
        return int(w.numel())
    try:  # packed int8 params of quantized::linear / conv: (weight, bias)
        unpacked = w.unpack()
        return int(unpacked[0].numel())
    except Exception:  # noqa: BLE001 - a packed type without unpack(): count the layer once
        return 1
