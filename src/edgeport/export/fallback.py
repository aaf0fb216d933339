"""Accuracy-aware mixed precision: keep the few layers int8 hurts most in float until the gate holds.

1. Rank every weighted layer by sensitivity (:mod:`.sensitivity`: output SQNR with that layer alone
   fake-quantized in PyTorch), then check the top ``LOO_TOP`` with the real quantizer of the worst
   failing format (leave-one-out: the task metric gained by keeping just that layer float) and put the
   biggest gain first.
2. Greedy: keep layers float one at a time, most sensitive first, re-quantizing the formats that still
   fail, until every format is within its gate, or more than ``MAX_FLOAT_SHARE`` of the compute would be
   float, or ``MAX_STEPS`` layers were tried.  Past that, those formats ship no int8 and say why.
3. The same set of float layers, named by PyTorch module, is then applied to every int8 format (ORT
   ``nodes_to_exclude``, NNCF ``IgnoredScope``, PT2E and FX per-module opt-outs).
"""

from __future__ import annotations

import numpy as np
import torch

from . import sensitivity

MAX_FLOAT_SHARE = 0.25  # of the model's multiply-accumulates that may stay float
MAX_STEPS = 8  # layers kept float, at most
LOO_TOP = 3  # leave-one-out checks with the real quantizer


def ranking(ctx, plan, sel) -> list[sensitivity.Layer]:
    """The sensitivity ranking of the exported model (computed once per export)."""
    if "sensitivity" in ctx.scratch:
        return ctx.scratch["sensitivity"]
    names = ctx.signature.input_names
    calib = [
        tuple(torch.from_numpy(f[n]) for n in names)
        for f, _ in _take(plan.calibration.batches(ctx.calibration.batch_size), 8)
    ]
    feeds = sel[0]
    k = min(256, len(next(iter(feeds.values()))))
    selection = tuple(torch.from_numpy(np.ascontiguousarray(feeds[n][:k])) for n in names)
    primary = _primary_index(ctx)
    from ..formats.onnx import no_fastpath

    with no_fastpath():
        ranked = sensitivity.rank(ctx.model.eval(), calib, selection, primary)
    ctx.scratch["sensitivity"] = ranked
    return ranked


def _take(it, n):
    for i, x in enumerate(it):
        if i >= n:
            break
        yield x


def _primary_index(ctx) -> int:
    for role in ctx.task.roles:
        for i, s in enumerate(ctx.signature.outputs):
            if s.role == role:
                return i
    return 0


def search(ctx, plan, sel, failing: dict, requantize, passes) -> tuple[list[str], list[dict]]:
    """(layers to keep float, the history of each step) for the formats in ``failing``.

    ``failing``: format -> its best candidate (scored); ``requantize(fmt, cand, kept)`` returns the
    candidate re-quantized with ``kept`` float and scored; ``passes(cand)`` says whether it is within
    the gate.  Every format is judged on the same selection samples as the candidate search.
    """
    layers = ranking(ctx, plan, sel)
    order = [L.name for L in layers]
    worst = min(failing, key=lambda f: ctx.task.rank_key(failing[f]["score"]["metrics"]))
    base = ctx.task.rank_key(failing[worst]["score"]["metrics"])
    for L in layers[:LOO_TOP]:  # leave-one-out with the real quantizer
        c = requantize(worst, failing[worst], [L.name])
        gain = np.subtract(ctx.task.rank_key(c["score"]["metrics"]), base)
        L.loo_gain = float(next((g for g in gain if np.isfinite(g)), 0.0))
    top = sorted(layers[:LOO_TOP], key=lambda L: -(L.loo_gain or 0.0))
    order = [L.name for L in top] + order[LOO_TOP:]
    kept, history, current = [], [], dict(failing)
    for name in order[:MAX_STEPS]:
        share = sensitivity.float_share(layers, kept + [name])
        if share > MAX_FLOAT_SHARE:
            history.append({"layer": name, "stopped": f"would keep {share * 100:.1f}% of the compute float"})
            break
        kept.append(name)
        step = {"layer": name, "compute_float": round(share, 4), "formats": {}}
        for fmt in list(current):
            current[fmt] = requantize(fmt, current[fmt], list(kept))
            ok = passes(current[fmt])
            step["formats"][fmt] = {"within_gate": ok, "metrics": current[fmt]["score"]["metrics"]}
            if ok:
                del current[fmt]
        history.append(step)
        if not current:
            break
    return kept, history


def describe(layers: list[sensitivity.Layer], kept: list[str]) -> list[dict]:
    """The float layers with why: their sensitivity and leave-one-out gain."""
    total = sum(L.macs for L in layers)
    by_name = {L.name: L for L in layers}
    return [by_name[n].to_dict(total) for n in kept if n in by_name]


__all__ = ["MAX_FLOAT_SHARE", "MAX_STEPS", "LOO_TOP", "describe", "ranking", "search"]
