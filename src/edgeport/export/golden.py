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
from .parity import concat_feeds, edge_feeds, reference

INPUTS = "golden/inputs.npz"
OUTPUTS = "golden/outputs.npz"
N_EDGE_NOISE = 2


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def golden_feeds(ctx, eval_source, n: int) -> tuple[dict, int, int]:
    """(inputs, real count, edge count)."""
    real, _ = first_batch(eval_source, min(n, len(eval_source)))
    edge = edge_feeds(ctx.signature, n_noise=N_EDGE_NOISE, seed=1)
    k_real = len(next(iter(real.values())))
    k_edge = len(next(iter(edge.values())))
    return concat_feeds([real, edge]), k_real, k_edge


def write_golden(ctx, eval_source, n: int) -> tuple[dict, dict, dict]:
    """Write both npz files; (golden block for the manifest, inputs, reference outputs)."""
    feeds, k_real, k_edge = golden_feeds(ctx, eval_source, n)
    ref = reference(ctx.staged_bundle(), feeds)
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
        "tolerance": "the verify tolerance table (edgeport.runtime.parity.TOLERANCES)",
    }
    return block, feeds, ref


def int8_agreement(ctx, int8_artifacts, feeds: dict, ref: dict) -> dict:
    """Top-1 agreement of each int8 artifact with fp32 on the golden inputs, at export."""
    from ..formats.registry import info

    primary = ctx.signature.primary_output
    if not primary.is_classifier:
        return {}
    out = {}
    bundle = ctx.staged_bundle()
    for art in int8_artifacts:
        with bundle.runner(info(art.format).backend, "int8", "cpu", artifact=art) as r:
            y = r.run_all(feeds)[primary.name]
        out[art.key] = float(np.mean(y.argmax(-1) == ref[primary.name].argmax(-1)))
    return out
