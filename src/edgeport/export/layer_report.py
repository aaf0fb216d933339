"""Per-layer error of each int8 artifact against the fp32 PyTorch model, through the runners' taps.

For every weighted layer (Linear/Conv; a Conv followed by BatchNorm is read
after the BatchNorm, which exporters fold into it) the int8 artifact's tensor
is compared with the fp32 model's on the same selection samples: SQNR in dB
(10 log10(sum ref^2 / sum (ref - q)^2)) and max abs error.  Rows are named by
PyTorch module names; the last row, ``output``, is the primary model output.
Errors accumulate, so later layers show the cost of all earlier ones.
A format whose graph cannot be tapped reports the output row only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import format_registry as registry
from ..specs import BATCH  # noqa: F401

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def error_stats(ref: np.ndarray, out: np.ndarray) -> dict:
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    out = np.asarray(out, np.float64).reshape(len(out), -1)
    if ref.shape != out.shape:
        return {"sqnr_db": None, "max_abs_error": float("nan")}
    noise = float(np.sum((ref - out) ** 2))
    signal = float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)
    return {
        "sqnr_db": round(sqnr, 2) if math.isfinite(sqnr) else None,
        "max_abs_error": float(np.max(np.abs(ref - out))) if ref.size else 0.0,
    }


def weighted_layers(model: nn.Module, example: tuple) -> dict[str, str]:
    """Weighted module name -> the module whose output stands for it (its BatchNorm, if one follows)."""
    names = {m: n for n, m in model.named_modules()}
    calls: list[tuple[str, nn.Module]] = []
    handles = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append((names[mod], mod)))
        for m in model.modules()
        if isinstance(m, WEIGHTED + NORMS)
    ]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in handles:
            h.remove()
    out: dict[str, str] = {}
    for i, (name, mod) in enumerate(calls):
        if isinstance(mod, WEIGHTED) and name not in out:
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            out[name] = (
                nxt[0]
                if nxt is not None and isinstance(nxt[1], NORMS) and isinstance(mod, nn.Conv2d)
                else name
            )
    return out


def _reference_taps(model: nn.Module, names: list[str], layers: dict, feeds: dict) -> tuple[dict, dict]:
    """The reference's outputs and the output of every tapped module, from the export's own model."""
    mods = dict(model.named_modules())
    taps: dict = {}
    handles = [
        mods[name].register_forward_hook(
            lambda _m, _i, o, k=label: taps.__setitem__(k, o.detach().float().cpu().numpy())
        )
        for label, name in layers.items()
    ]
    try:
        with torch.inference_mode():
            y = model(*[torch.from_numpy(feeds[n]) for n in names])
    finally:
        for h in handles:
            h.remove()
    ys = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (tuple, list)) else [y]
    return ys, taps


def layer_report(ctx, int8_artifacts, feeds: dict) -> dict:
    layers = weighted_layers(ctx.model, ctx.example)
    if not layers:  # an ExportedProgram: a flat graph without modules to name
        return {}
    bundle = ctx.staged_bundle()
    ys, ref_taps = _reference_taps(ctx.model, ctx.signature.input_names, layers, feeds)
    ref_out = {s.name: y.detach().float().cpu().numpy() for s, y in zip(ctx.signature.outputs, ys)}
    primary = ctx.signature.primary_output.name
    report = {}
    for art in int8_artifacts:
        mod = registry.module(art.format)
        outs, taps = _int8_taps(ctx, bundle, art, mod, list(layers), feeds)
        rows = []
        for name in layers:
            for label, value in taps.items():
                base, _, relu = label.partition("+")
                if base == name:
                    ref = np.maximum(ref_taps[name], 0) if relu == "relu" else ref_taps[name]
                    rows.append({"layer": name, **error_stats(ref, value)})
        rows.append({"layer": "output", **error_stats(ref_out[primary], outs[primary])})
        report[art.format] = rows
    return {
        "reference": "pytorch fp32",
        "split": "selection",
        "images": int(len(next(iter(feeds.values())))),
        "formats": report,
    }


def _int8_taps(ctx, bundle, art, mod, names: list[str], feeds: dict) -> tuple[dict, dict]:
    backend = registry.info(art.format).backend
    if hasattr(mod, "layer_taps"):
        taps = mod.layer_taps(ctx, art, names)
        with bundle.runner(backend, "int8", "cpu", artifact=art, taps=taps or None) as r:
            if taps:
                outs, tapped = r.run_taps(feeds)
                if hasattr(mod, "dequantize_taps"):
                    tapped = mod.dequantize_taps(ctx, art, taps, tapped)
                return outs, tapped
            return r.run(feeds), {}
    if hasattr(mod, "layer_outputs"):
        outs, taps = mod.layer_outputs(ctx, art, feeds, names)
        if outs:
            return outs, taps
    with bundle.runner(backend, "int8", "cpu", artifact=art) as r:
        return r.run(feeds), {}


def format_layer_report(obj) -> str:
    """A text table of the layer report in a Bundle, Manifest or report dict (torch-free)."""
    from ..bundle.describe import format_layer_report as fmt

    return fmt(obj)
