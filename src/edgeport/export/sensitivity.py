"""Which layers int8 hurts most: a format-independent ranking by PyTorch module name.

Each weighted layer (Linear, Conv) is quantized *alone* in PyTorch, the way
the int8 formats do it (int8 per-channel symmetric weights, uint8 per-tensor
activations over the calibration range), and the model's primary output is
compared with fp32 on the selection samples: the lower the output SQNR, the
more sensitive the layer.  The same module names then map onto every format's
own "keep this float" switch (ORT ``nodes_to_exclude``, NNCF ``IgnoredScope``,
PT2E and FX per-module ``None`` configs), so one plan applies everywhere.

The compute share of each layer (multiply-accumulates at one sample) bounds
how much of the model a fallback may keep in float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class Layer:
    name: str
    macs: int  # multiply-accumulates per sample
    sqnr_db: float | None = None  # output SQNR with only this layer in int8 (lower: more sensitive)
    loo_gain: float | None = None  # the task metric gained by keeping it float (leave-one-out, top few)

    def to_dict(self, total_macs: int) -> dict:
        return {
            "layer": self.name,
            "compute_share": round(self.macs / max(total_macs, 1), 4),
            "sqnr_db": None if self.sqnr_db is None else round(self.sqnr_db, 2),
            "loo_gain": None if self.loo_gain is None else round(self.loo_gain, 5),
        }


def _macs(mod: nn.Module, out: torch.Tensor) -> int:
    per_sample = out[0].numel() if out.ndim > 1 else out.numel()
    if isinstance(mod, nn.Linear):
        return int(per_sample * mod.in_features)
    k = int(np.prod(mod.kernel_size))
    return int(per_sample * (mod.in_channels // mod.groups) * k)


def weighted(model: nn.Module, example: tuple) -> tuple[list[Layer], dict[str, tuple[float, float]]]:
    """(every weighted layer with its MACs, in call order; the input range each one saw on ``example``)."""
    names = {m: n for n, m in model.named_modules()}
    found: dict[str, Layer] = {}
    ranges: dict[str, tuple[float, float]] = {}

    def hook(mod, inp, out):
        name = names[mod]
        if name not in found and isinstance(out, torch.Tensor):
            found[name] = Layer(name, _macs(mod, out))
        x = inp[0].detach()
        lo, hi = float(x.min()), float(x.max())
        old = ranges.get(name, (lo, hi))
        ranges[name] = (min(lo, old[0]), max(hi, old[1]))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, WEIGHTED)]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in handles:
            h.remove()
    return list(found.values()), ranges


def _fake_weight(w: torch.Tensor) -> torch.Tensor:
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(1).clamp_min(1e-12) / 127.0
    q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127) * scale[:, None]
    return q.reshape(w.shape)


def _fake_act(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255.0
    zero = round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float:
    noise = float(np.sum((ref.astype(np.float64) - out) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


def rank(model: nn.Module, calibration: list[tuple], selection: tuple, primary: int = 0) -> list[Layer]:
    """Every weighted layer, most sensitive first: output SQNR with only that layer fake-quantized.

    ``calibration``: batches (tuples of input tensors) that set the activation ranges;
    ``selection``: one batch the output is measured on; ``primary``: which model output.
    """
    layers, ranges = weighted(model, calibration[0])
    for batch in calibration[1:]:
        _, more = weighted(model, batch)
        for k, (lo, hi) in more.items():
            a, b = ranges.get(k, (lo, hi))
            ranges[k] = (min(a, lo), max(b, hi))
    mods = dict(model.named_modules())
    with torch.no_grad():
        ref = _first(model(*selection), primary)
        for layer in layers:
            mod = mods[layer.name]
            lo, hi = ranges.get(layer.name, (0.0, 0.0))
            saved = mod.weight.data.clone()
            mod.weight.data = _fake_weight(saved)
            handle = mod.register_forward_pre_hook(
                lambda _m, inp, lo=lo, hi=hi: (_fake_act(inp[0], lo, hi), *inp[1:])
            )
            try:
                layer.sqnr_db = _sqnr(ref, _first(model(*selection), primary))
            finally:
                handle.remove()
                mod.weight.data = saved
    return sorted(layers, key=lambda L: L.sqnr_db if L.sqnr_db is not None else math.inf)


def _first(y, primary: int) -> np.ndarray:
    if isinstance(y, dict):
        y = list(y.values())
    if isinstance(y, (tuple, list)):
        y = y[primary]
    return y.detach().float().numpy()


def float_share(layers: list[Layer], kept: list[str]) -> float:
    total = sum(L.macs for L in layers) or 1
    return sum(L.macs for L in layers if L.name in kept) / total
