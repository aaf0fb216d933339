"""Golden I/O: real inputs and their fp32 PyTorch outputs, stored in the bundle for ``selfcheck``.

By default 64 samples of the eval data plus edge cases (zeros, value-range
extremes, noise), hashed like every file.  The int8 artifacts' agreement on
them at export is recorded, with the margin a device may fall short of it.
"""

from __future__ import annotations

import io

import numpy as np

from ..bundle.writer import file_entry, write_bytes
from ..sources.data import first_batch
from .parity import concat_feeds, edge_like, finite_reference

INPUTS = "golden/inputs.npz"
OUTPUTS = "golden/outputs.npz"
N_EDGE_NOISE = 2
DEFAULT_SAMPLES = 64
# Golden I/O travels with every bundle to every device: without --golden-samples, fewer real samples
# when 64 would take more than this (a 224x224 RGB float32 image is 588 KiB), but never under MIN_SAMPLES.
BUDGET_BYTES = 8 << 20
MIN_SAMPLES = 16


def default_count(signature) -> int:
    """Real golden samples when the user named no count: 64, or what fits BUDGET_BYTES (at least 16)."""
    values = signature.example_values(1)
    per = sum(int(np.prod(s.concrete_shape(values))) * s.np_dtype.itemsize for s in signature.inputs)
    return max(MIN_SAMPLES, min(DEFAULT_SAMPLES, BUDGET_BYTES // max(per, 1)))


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def golden_feeds(ctx, eval_source, n: int | None) -> tuple[dict, int, int]:
    """(inputs, real count, edge count); ``n`` None: :func:`default_count`."""
    n = default_count(ctx.signature) if n is None else n
    real, _ = first_batch(eval_source, min(n, len(eval_source)))
    edge = edge_like(ctx.signature, real, n_noise=N_EDGE_NOISE, seed=1)
    k_real = len(next(iter(real.values())))
    k_edge = len(next(iter(edge.values())))
    return concat_feeds([real, edge]), k_real, k_edge


def write_golden(ctx, eval_source, n: int | None) -> tuple[dict, dict, dict]:
    """Write both npz files; (golden block for the manifest, inputs, reference outputs)."""
    feeds, k_real, k_edge = golden_feeds(ctx, eval_source, n)
    feeds, ref, keep = finite_reference(ctx.staged_bundle(), feeds)
    # the real samples are in the model's domain: what drops is an edge case
    k_edge -= min(k_real + k_edge - len(keep), k_edge)
    write_bytes(ctx.staging, INPUTS, _npz(feeds))
    write_bytes(ctx.staging, OUTPUTS, _npz(ref))
    total = k_real + k_edge
    block = {
        "inputs": INPUTS,
        "outputs": OUTPUTS,
        "files": [file_entry(ctx.staging, INPUTS).to_dict(), file_entry(ctx.staging, OUTPUTS).to_dict()],
        "n": total,
        "edge_cases": k_edge,
        "source": f"{k_real} samples of the eval data ({eval_source.kind}) + {k_edge} edge cases",
        "evidence": eval_source.evidence,
        # a device may agree this much less than the exporting machine did (int8 rounding differs by CPU)
        "margin": round(max(0.03, 2.0 / total), 4),
        "tolerance": "the verify criteria (edgeport.runtime.parity and the task's gates)",
    }
    return block, feeds, ref


def int8_metrics(ctx, int8_artifacts, feeds: dict, ref: dict, golden: dict | None = None) -> dict:
    """The task's metrics of each int8 artifact on the golden inputs, at export (``selfcheck`` holds a
    device to them, within the recorded margin); for classifiers also the top-1 agreement alone."""
    from ..format_registry import info
    from ..runtime.parity import Criteria, ParityAccumulator, golden_edge_rows

    metrics, agreement = {}, {}
    bundle = ctx.staged_bundle()
    edge = golden_edge_rows(golden, len(next(iter(feeds.values()))))
    for art in int8_artifacts:
        with bundle.runner(info(art.format).backend, "int8", "cpu", artifact=art) as r:
            out = r.run_all(feeds)
        acc = ParityAccumulator(ctx.signature, Criteria(None, None, {}), art.key, "int8", task=ctx.task)
        acc.update(ref, out, edge=edge)
        res = acc.result()
        gated = [g.metric for g in ctx.task.GATES]
        metrics[art.key] = {m: res.metrics[m] for m in gated if res.metrics.get(m) is not None}
        if res.agreement is not None:
            agreement[art.key] = float(res.agreement)
    out = {"int8_metrics": metrics}
    if agreement:
        out["int8_agreement"] = agreement
    return out
