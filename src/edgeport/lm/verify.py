"""``verify`` of a text-generation bundle: every artifact against transformers on held-out text.

Per backend x precision x device: next-token argmax agreement under teacher
forcing (prefill half of each window, then one token per step through the
cache), perplexity and its change against PyTorch's, and - for every
precision, gated for fp32 - whether the first greedy tokens after the golden
prompts are identical to transformers' greedy ``generate``.  Gates (defaults
in :data:`~.evaluate.DEFAULT_GATES`, overridable): fp32 agreement >= 99.9% and
identical greedy text; int8 perplexity +<= 2%; int4 perplexity +<= 10%.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, EdgeportError
from ..runtime import lm_check
from ..runtime.decoders import DEFAULT_BACKENDS
from ..runtime.lm_tokenizer import Tokenizer
from ..runtime.plan import environment, select_runs
from .evaluate import GOLDEN_TOKENS, parse_gates, text_ids
from .reference import greedy_tokens, load_reference, window_stats

SCHEMA = lm_check.VERIFY_SCHEMA
DEFAULT_TOKENS = 1024
WINDOW = 256


def _windows(ids: np.ndarray, max_context: int) -> list[np.ndarray]:
    w = min(WINDOW, max_context)
    return [ids[a : a + w] for a in range(0, len(ids) - 1, w) if len(ids[a : a + w]) >= 2]


def verify_lm(
    bundle,
    *,
    data=None,
    backends=None,
    precisions=None,
    devices=None,
    gates=None,
    tokens: int | None = None,
    progress: bool = True,
) -> dict:
    """The report dict (schema ``edgeport.verify-lm/1``); ``report["passed"]`` is False when a gate failed."""
    from ..progress import progress_bar

    g = bundle.manifest.generation
    gates = parse_gates({**(g.get("gates") or {}), **(gates or {})})
    sel = {"backends": backends or DEFAULT_BACKENDS, "precisions": precisions, "devices": devices}
    runs, skipped = select_runs(bundle, **sel, exclude=("torch",))
    tok = Tokenizer.from_bundle(bundle)
    ids, ident = text_ids(tok._tok if tok else None, g["vocab_size"], data, tokens or DEFAULT_TOKENS)
    windows = _windows(ids, g["max_context"])
    if not windows:
        raise DataError("the eval text is too short: it needs at least 2 tokens")
    ref, ref_nll, prompts, n_new, ref_greedy = _reference(bundle, windows, g)
    rows = []
    bar = progress_bar(len(runs), progress, "verify", unit="artifact")
    try:
        for backend, precision, device in runs:
            bar.set_description(f"{backend}:{device} {precision}")
            try:
                rows.append(
                    _row(
                        bundle, backend, precision, device, windows, ref, ref_nll, prompts, ref_greedy, gates
                    )
                )
            except EdgeportError as exc:
                skipped.append(
                    {"backend": backend, "device": device, "precision": precision, "reason": str(exc)}
                )
            bar.update(1)
    finally:
        bar.close()
    return {
        "schema": SCHEMA,
        "task": "text-generation",
        "bundle": str(bundle.path),
        "model": bundle.manifest.model,
        "warnings": bundle.warnings,
        "data": ident | {"n": int(sum(len(w) - 1 for w in windows)), "windows": len(windows)},
        "reference": {
            "perplexity": float(np.exp(ref_nll)),
            "greedy_prompts": len(prompts),
            "greedy_tokens": n_new,
        },
        "gates": gates,
        "rows": rows,
        "skipped": skipped,
        "passed": bool(rows) and all(r["passed"] for r in rows),
        "device": environment(sorted({r[0] for r in runs})),
    }


def _reference(bundle, windows: list, g: dict):
    """PyTorch's side, once: per-window stats, mean NLL, the golden prompts and their greedy tokens."""
    model = load_reference(bundle)
    ref = [window_stats(model, [int(t) for t in w]) for w in windows]
    ref_nll = float(np.mean(np.concatenate([r[1] for r in ref])))
    prompts = (g.get("golden") or {}).get("prompts") or []
    n_new = min(GOLDEN_TOKENS, g["max_context"] - max((len(p["ids"]) for p in prompts), default=0))
    return ref, ref_nll, prompts, n_new, [greedy_tokens(model, p["ids"], n_new) for p in prompts]


def _row(bundle, backend, precision, device, windows, ref, ref_nll, prompts, ref_greedy, gates) -> dict:
    with bundle.runner(backend, precision, device) as r:
        stats = [lm_check.teacher_forced(r, w, len(w) // 2) for w in windows]
        argmax = np.concatenate([s[0] for s in stats])
        nll = np.concatenate([s[1] for s in stats])
        row = lm_check.compare(argmax, nll, np.concatenate([x[0] for x in ref]), ref_nll)
        same = [lm_check.greedy(r, p["ids"], len(t)) == t for p, t in zip(prompts, ref_greedy)]
        info = r.describe()
    row |= {"greedy_identical": int(sum(same)), "greedy_total": len(same)}
    reasons = lm_check.gate_reasons(precision, row, gates)
    return {
        **{k: info[k] for k in ("backend", "device", "format", "precision", "threads")},
        **row,
        "passed": not reasons,
        "reasons": reasons,
    }
