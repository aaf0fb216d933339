"""Parity at export, through the runtime's runners on the staged bundle.

Inputs: real samples of the eval data plus edge inputs (zeros, ones, each
input's value-range extremes, uniform noise), run once in batches whose sizes
cycle through the configured batch sizes (1, 2, 7, 64 by default, capped by
the batch bound), so a batch size baked into a graph is caught without running
everything four times.  Every other dynamic dim (sequence length, image size)
is then run at its min, an odd middle value and its max, on real samples
resized along that axis.  Criteria come from :mod:`edgeport.runtime.parity`
and the bundle's task; every failure is collected per artifact, so one format
that fails can be left out of the bundle while the others are written.
"""

from __future__ import annotations

import time

import numpy as np

from ..runtime.parity import N_DIM_SAMPLES, Criteria, ParityAccumulator, dim_groups, resize_feeds
from ..specs import BATCH

N_NOISE = 8
EDGE_VALUES = (0.0, 1.0)  # and each float input's value-range low and high: 4 fixed edge inputs
N_FIXED_EDGE = len(EDGE_VALUES) + 2


def edge_feeds(signature, n_noise: int = N_NOISE, seed: int = 0) -> dict:
    """Zeros, ones, the value-range extremes and uniform noise, for every float input (ints: their range)."""
    rng = np.random.default_rng(seed)
    values = signature.example_values(1)
    out = {}
    for spec in signature.inputs:
        shape = spec.concrete_shape(values)[1:]
        if spec.np_dtype.kind == "f":
            lo, hi = spec.value_range or (-3.0, 3.0)
            fixed = [np.full(shape, v, spec.np_dtype) for v in (*EDGE_VALUES, lo, hi)]
            noise = rng.uniform(lo, hi, size=(n_noise, *shape)).astype(spec.np_dtype)
        else:
            # integers (token ids, indices): draws over their range; a constant row (all padding) is no edge
            lo, hi = (int(spec.value_range[0]), int(spec.value_range[1])) if spec.value_range else (0, 9)
            fixed = list(rng.integers(lo, hi + 1, size=(N_FIXED_EDGE, *shape)).astype(spec.np_dtype))
            noise = rng.integers(lo, hi + 1, size=(n_noise, *shape)).astype(spec.np_dtype)
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
        return r.run_all(feeds, min(batch, r.max_batch))  # --max-batch below 64 bounds this too


def finite_reference(bundle, feeds: dict, batch: int = 64) -> tuple[dict, dict, np.ndarray]:
    """(feeds, reference outputs, indices of the rows kept): rows PyTorch itself answers with NaN/inf are
    left out.  An edge input outside the model's domain (e.g. a sequence that is all padding) proves
    nothing about an artifact.  Batches run whole; only a batch that fails is redone row by row."""
    from ..errors import OutputError

    n = len(next(iter(feeds.values())))
    keep, outs = [], []
    with bundle.runner("torch", "fp32", "cpu") as r:
        batch = min(batch, r.max_batch)  # --max-batch below 64 bounds this too
        for a in range(0, n, batch):
            b = min(n, a + batch)
            try:
                outs.append(r.run(_slice(feeds, a, b)))
                keep += range(a, b)
            except OutputError:
                for i in range(a, b):
                    try:
                        outs.append(r.run(_slice(feeds, i, i + 1)))
                        keep.append(i)
                    except OutputError:
                        continue
    if not outs:
        raise OutputError("PyTorch returns NaN or inf on every parity input; check the model and its inputs")
    ref = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    return {k: v[keep] for k, v in feeds.items()}, ref, np.asarray(keep, dtype=np.int64)


def _row(res) -> dict:
    return {
        "n": res.n,
        "max_abs": res.max_abs,
        "max_rel": res.max_rel,
        "agreement": res.agreement,
        "metrics": {k: v for k, v in res.metrics.items() if isinstance(v, (int, float)) or v is None},
        "passed": res.passed,
        "outputs": {
            k: {kk: v[kk] for kk in ("max_abs", "max_rel", "passed")} for k, v in res.outputs.items()
        },
    }


class RunFailure:
    """An artifact that could not run on some inputs: a failed result whose reason is the error."""

    passed, n = False, 0

    def __init__(self, name: str, label: str, exc) -> None:
        where = "" if label == "data" else f" at {label}"
        self.reasons = (f"could not run{where}: {exc}",)
        self.text = f"{name}: {self.reasons[0]}"

    def describe(self) -> str:
        return self.text


def check_artifact(
    bundle, art, groups, *, batch_sizes, criteria: Criteria, task, evidence
) -> tuple[dict, list]:
    """(parity summary, failed results) of one artifact over every feed group (data, then each dim point)."""
    from ..errors import EdgeportError
    from ..format_registry import info

    name = f"{art.format}/{art.precision}"
    rows, failed = {}, []
    with bundle.runner(info(art.format).backend, art.precision, "cpu", artifact=art) as runner:
        for label, feeds, ref, edge in groups:
            try:
                accs = _run_group(
                    bundle, runner, name, art, (label, feeds, ref, edge), batch_sizes, criteria, task
                )
            except EdgeportError as exc:
                failed.append(RunFailure(name, label, exc))
                rows[label if label != "data" else "b-error"] = {"passed": False, "error": str(exc)[:300]}
                continue
            for key, acc in accs.items():
                res = acc.result(batch_size=int(key[1:]) if key.startswith("b") else None, evidence=evidence)
                if res.n == 0:
                    continue
                rows[key] = _row(res)
                if not res.passed:
                    failed.append(res)
    summary = {
        "tolerance": {"atol": criteria.atol, "rtol": criteria.rtol},
        "gates": dict(criteria.gates),
        "batch_sizes": {k[1:]: v for k, v in rows.items() if k.startswith("b")},
        "dims": {k: v for k, v in rows.items() if not k.startswith("b")},
    }
    return summary, failed


def _run_group(bundle, runner, name, art, group, batch_sizes, criteria, task) -> dict:
    """Accumulators of one feed group: the data in cycling batch sizes, or a dim point in one batch."""
    label, feeds, ref, edge = group
    n = len(next(iter(feeds.values())))

    def acc(title):
        return ParityAccumulator(bundle.signature, criteria, title, art.precision, task=task)

    if label != "data":
        accs = {label: acc(f"{name} at {label}")}
        for a in range(0, n, runner.max_batch):
            b = min(n, a + runner.max_batch)
            accs[label].update(_slice(ref, a, b), runner.run(_slice(feeds, a, b)), edge=edge[a:b])
        return accs
    sizes = tuple(b for b in batch_sizes if b <= runner.max_batch) or (runner.max_batch,)
    accs = {f"b{bs}": acc(name) for bs in sizes}
    for a, b, bs in chunks(n, sizes):
        accs[f"b{bs}"].update(_slice(ref, a, b), runner.run(_slice(feeds, a, b)), edge=edge[a:b])
    return accs


def parity_groups(bundle, feeds: dict, note: dict, n_real: int) -> list[tuple[str, dict, dict, np.ndarray]]:
    """(label, feeds, reference outputs, edge-row mask): the data (``n_real`` real rows, then the edge
    inputs) and each dim point.  Inputs PyTorch itself answers with NaN/inf are dropped (and counted in
    ``note``); edge rows are judged with :data:`~edgeport.runtime.parity.EDGE_TOLERANCE_FACTOR`."""
    n = len(next(iter(feeds.values())))
    feeds, ref, keep = finite_reference(bundle, feeds)
    if len(keep) < n:
        note["dropped"] = (
            f"{n - len(keep)} inputs on which PyTorch returns NaN/inf (outside the model's domain)"
        )
    groups = [("data", feeds, ref, keep >= n_real)]
    if bundle.signature.free_dims:
        sample = {k: v[:N_DIM_SAMPLES] for k, v in feeds.items()}
        for label, f in dim_groups(bundle.signature, sample):
            edge = keep[:N_DIM_SAMPLES] >= n_real
            groups.append((label, f, reference(bundle, f, batch=N_DIM_SAMPLES), edge))
    return groups


def parity_block(summary: dict, groups, batch_sizes, note: dict, seconds: float, failures: list) -> dict:
    n = len(next(iter(groups[0][1].values())))
    dims = [g[0] for g in groups[1:]]
    return {
        "reference": "torch eager, fp32, cpu (the bundle's checkpoint)",
        "inputs": dict(note, n=int(n)),
        "batch_sizes": list(batch_sizes),
        "dim_points": dims,
        "method": "each input run once, in batches whose sizes cycle through batch_sizes; then "
        f"{N_DIM_SAMPLES} samples at each dynamic dim's min, middle and max",
        "seconds": round(seconds, 3),
        "passed": not failures,
        "artifacts": summary,
    }


def parity_feeds(
    signature, eval_source, n_samples: int, budget_bytes: int = 128 << 20
) -> tuple[dict, dict, int]:
    """(feeds, note, n real): up to ``n_samples`` eval samples (within a memory budget), then edge inputs."""
    from ..sources.data import first_batch

    values = signature.example_values(1)
    per = sum(int(np.prod(s.concrete_shape(values))) * s.np_dtype.itemsize for s in signature.inputs)
    n = max(1, min(n_samples, len(eval_source), budget_bytes // max(per, 1)))
    real, _ = first_batch(eval_source, n)
    edge = edge_like(signature, real)
    note = {
        "real": f"{n} samples of the eval data ({eval_source.kind}, {eval_source.evidence})",
        "edge": f"zeros, ones, value-range extremes, {N_NOISE} uniform noise",
        "evidence": eval_source.evidence,
    }
    return concat_feeds([real, edge]), note, n


def edge_like(signature, real: dict, n_noise: int = N_NOISE, seed: int = 0) -> dict:
    """Edge inputs at the sizes the real data has along every dynamic dim (so they batch together)."""
    edge = edge_feeds(signature, n_noise, seed)
    sizes = {}
    for s in signature.inputs:
        for axis, d in enumerate(s.shape):
            if isinstance(d, str) and d != BATCH:
                sizes[d] = real[s.name].shape[axis]
    return resize_feeds(signature, edge, sizes) if sizes else edge


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


__all__ = ["BATCH", "check_artifact", "chunks", "edge_feeds", "parity_feeds", "parity_groups", "reference"]
