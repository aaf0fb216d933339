"""Parity at export, through the runtime's runners on the staged bundle.

Inputs: real samples of the eval data plus edge inputs (zeros, ones, each
input's value-range extremes, uniform noise).  Every input is run once, in
batches whose sizes cycle through the configured batch sizes (1, 2, 7, 64),
so a batch size baked into a graph is caught without running everything four
times.  Tolerances come from :mod:`edgeport.runtime.parity`; every failure is
collected and one :class:`ParityError` lists them all.
"""

from __future__ import annotations

import time

import numpy as np

from ..runtime.parity import ParityAccumulator, Tolerance, raise_on_failures
from ..specs import BATCH

N_NOISE = 8


def edge_feeds(signature, n_noise: int = N_NOISE, seed: int = 0) -> dict:
    """Zeros, ones, the value-range extremes and uniform noise, for every float input (ints: 0 and noise)."""
    rng = np.random.default_rng(seed)
    values = signature.example_values(1)
    out = {}
    for spec in signature.inputs:
        shape = spec.concrete_shape(values)[1:]
        if spec.np_dtype.kind == "f":
            lo, hi = spec.value_range or (-3.0, 3.0)
            fixed = [np.full(shape, v, spec.np_dtype) for v in (0.0, 1.0, lo, hi)]
            noise = rng.uniform(lo, hi, size=(n_noise, *shape)).astype(spec.np_dtype)
        else:
            fixed = [np.zeros(shape, spec.np_dtype)] * 4
            noise = rng.integers(0, 10, size=(n_noise, *shape)).astype(spec.np_dtype)
        out[spec.name] = np.concatenate([np.stack(fixed), noise])
    return out


def concat_feeds(parts: list[dict]) -> dict:
    return {k: np.ascontiguousarray(np.concatenate([p[k] for p in parts])) for k in parts[0]}


def chunks(n: int, sizes: tuple[int, ...]):
    """(start, stop, size) covering 0..n with batch sizes cycling through ``sizes``."""
    i, k = 0, 0
    while i < n:
        bs = sizes[k % len(sizes)]
        yield i, min(n, i + bs), bs
        i += bs
        k += 1


def _slice(feeds: dict, a: int, b: int) -> dict:
    return {k: v[a:b] for k, v in feeds.items()}


def reference(bundle, feeds: dict, batch: int = 64) -> dict:
    """The torch reference outputs of the staged bundle on ``feeds``."""
    with bundle.runner("torch", "fp32", "cpu") as r:
        return r.run_all(feeds, batch)


def check_parity(
    bundle,
    artifacts,
    feeds: dict,
    ref: dict,
    *,
    batch_sizes: tuple[int, ...],
    fp32_tolerance: Tolerance,
    inputs_note: dict,
) -> dict:
    """Run every artifact over ``feeds``; the manifest's ``parity`` block.  Raises ParityError listing failures."""
    from ..formats.registry import info
    from ..runtime.parity import TOLERANCES

    n = len(next(iter(feeds.values())))
    results, summary = [], {}
    t0 = time.perf_counter()
    for art in artifacts:
        tol = fp32_tolerance if art.precision == "fp32" else TOLERANCES[art.precision]
        name = f"{art.format}/{art.precision}"
        with bundle.runner(info(art.format).backend, art.precision, "cpu", artifact=art) as runner:
            sizes = tuple(b for b in batch_sizes if b <= runner.max_batch) or (runner.max_batch,)
            per_bs = {bs: ParityAccumulator(bundle.signature, tol, name, art.precision) for bs in sizes}
            for a, b, bs in chunks(n, sizes):
                per_bs[bs].update(_slice(ref, a, b), runner.run(_slice(feeds, a, b)))
        rows = {}
        for bs, acc in per_bs.items():
            res = acc.result(batch_size=bs, evidence=inputs_note.get("evidence"))
            if res.n == 0:
                continue
            results.append(res)
            rows[str(bs)] = {
                "n": res.n,
                "max_abs": res.max_abs,
                "max_rel": res.max_rel,
                "agreement": res.agreement,
                "passed": res.passed,
                "outputs": {
                    k: {kk: v[kk] for kk in ("max_abs", "max_rel", "agreement", "passed")}
                    for k, v in res.outputs.items()
                },
            }
        summary[name] = {
            "tolerance": {"atol": tol.atol, "rtol": tol.rtol, "min_agreement": tol.min_agreement},
            "batch_sizes": rows,
        }
    raise_on_failures(results, "export parity against PyTorch")
    return {
        "reference": "torch eager, fp32, cpu (the bundle's checkpoint)",
        "inputs": dict(inputs_note, n=int(n)),
        "batch_sizes": list(batch_sizes),
        "method": "each input run once, in batches whose sizes cycle through batch_sizes",
        "seconds": round(time.perf_counter() - t0, 3),
        "passed": True,
        "artifacts": summary,
    }


def parity_feeds(signature, eval_source, n_samples: int, budget_bytes: int = 128 << 20) -> tuple[dict, dict]:
    """(feeds, note): up to ``n_samples`` eval samples (within a memory budget) plus edge inputs."""
    from ..sources.data import first_batch

    values = signature.example_values(1)
    per = sum(int(np.prod(s.concrete_shape(values))) * s.np_dtype.itemsize for s in signature.inputs)
    n = max(1, min(n_samples, len(eval_source), budget_bytes // max(per, 1)))
    real, _ = first_batch(eval_source, n)
    edge = edge_feeds(signature)
    note = {
        "real": f"{n} samples of the eval data ({eval_source.kind}, {eval_source.evidence})",
        "edge": f"zeros, ones, value-range extremes, {N_NOISE} uniform noise",
        "evidence": eval_source.evidence,
    }
    return concat_feeds([real, edge]), note


__all__ = ["BATCH", "check_parity", "chunks", "edge_feeds", "parity_feeds", "reference"]
