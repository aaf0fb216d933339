"""Text-generation metrics, torch-free: next-token agreement under teacher forcing, perplexity, greedy
identity; and ``selfcheck`` of a text-generation bundle against its golden prompts and tokens.

Teacher forcing runs the artifact the way generation does: the first
``prefill`` tokens in one call, then one token per call through the KV cache,
so the cache path is what gets measured.  Perplexity is ``exp(mean NLL)`` of
each next token; its change is relative to the reference's.
"""

from __future__ import annotations

import numpy as np

GOLDEN_MARGIN = 0.03  # agreement a device may fall short of the export-time figure (kernels differ)


def token_stats(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax per row, negative log-likelihood of each row's target), in float64."""
    z = logits.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[:, 0]
    nll = lse - z[np.arange(len(targets)), targets]
    return z.argmax(axis=-1), nll


def teacher_forced(runner, ids, prefill: int) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, nll) for positions 1..n-1 of ``ids``: ``prefill`` tokens at once, then one at a time."""
    ids = np.asarray(ids, np.int64)
    prefill = max(1, min(int(prefill), len(ids) - 1))
    runner.reset()
    rows = [runner.forward(ids[:prefill])]
    for t in ids[prefill:-1]:
        rows.append(runner.forward(np.array([t]), last_only=True))
    return token_stats(np.concatenate(rows), ids[1:])


def perplexity(nll) -> float:
    return float(np.exp(np.mean(nll))) if len(nll) else float("nan")


def greedy(runner, ids, n: int) -> list[int]:
    g = runner.generate([int(t) for t in ids], n, ignore_eos=True)
    return g.tokens


def compare(argmax, nll, ref_argmax, ref_nll: float) -> dict:
    """Agreement and perplexity of an artifact against the reference's argmax and mean NLL."""
    agree = float(np.mean(np.asarray(argmax) == np.asarray(ref_argmax)))
    ppl, ref_ppl = perplexity(nll), float(np.exp(ref_nll))
    return {
        "agreement": agree,
        "perplexity": ppl,
        "reference_perplexity": ref_ppl,
        "perplexity_change": ppl / ref_ppl - 1.0,
        "nll": float(np.mean(nll)),
    }


def gate_reasons(precision: str, row: dict, gates: dict) -> list[str]:
    """Why a row fails its precision's gates ([] when it passes)."""
    out = []
    if precision in ("fp32", "fp16"):
        need = gates["fp32_agreement"]
        if row["agreement"] < need:
            out.append(f"next-token agreement {row['agreement'] * 100:.2f}% < {need * 100:.2f}%")
        if (
            gates.get("fp32_greedy", 1)
            and row.get("greedy_total")
            and row["greedy_identical"] < row["greedy_total"]
        ):
            out.append(
                f"greedy tokens identical for {row['greedy_identical']} of {row['greedy_total']} prompts"
            )
    else:
        limit = gates.get(f"{precision}_ppl_increase")
        if limit is not None and row["perplexity_change"] > limit:
            out.append(f"perplexity +{row['perplexity_change'] * 100:.2f}% > +{limit * 100:.1f}%")
    return out


def selfcheck_row(runner, golden: dict, gates: dict) -> dict:
    """One artifact against the bundle's golden prompts, tokens and text.

    fp32: the fp32 gates (agreement, identical greedy tokens).  Every artifact:
    agreement at least its export-time figure minus the golden margin, and
    perplexity at most its export-time figure plus that margin (relative).
    The quality gates of int8/int4 against PyTorch belong to ``verify``.
    """
    text = golden["text"]
    argmax, nll = teacher_forced(runner, text["ids"], text.get("prefill", len(text["ids"]) // 2))
    row = compare(argmax, nll, text["reference_argmax"], text["reference_nll"])
    same = [greedy(runner, p["ids"], len(p["tokens"])) == p["tokens"] for p in golden["prompts"]]
    row |= {"greedy_identical": int(sum(same)), "greedy_total": len(same)}
    export_time = golden.get("artifacts", {}).get(f"{runner.format}/{runner.precision}", {})
    margin = float(golden.get("margin", GOLDEN_MARGIN))
    reasons = gate_reasons("fp32", row, gates) if runner.precision == "fp32" else []
    if export_time and row["agreement"] < export_time["agreement"] - margin:
        reasons.append(
            f"agreement {row['agreement'] * 100:.1f}% < export-time {export_time['agreement'] * 100:.1f}% "
            f"- {margin * 100:.0f}% margin"
        )
    if export_time and row["perplexity"] > np.exp(export_time["nll"]) * (1 + margin):
        reasons.append(
            f"perplexity {row['perplexity']:.3f} > export-time {np.exp(export_time['nll']):.3f} + {margin * 100:.0f}%"
        )
    return row | {"export_time": export_time, "passed": not reasons, "reasons": reasons}


SELFCHECK_SCHEMA = "edgeport.selfcheck/1"
VERIFY_SCHEMA = "edgeport.verify-lm/1"


def selfcheck_lm(bundle, *, backends=None, precisions=None, devices=None) -> dict:
    """``selfcheck`` of a text-generation bundle: every runnable artifact on the golden prompts and text."""
    from ..errors import BundleError, EdgeportError
    from .decoders import DEFAULT_BACKENDS
    from .plan import environment, select_runs

    g = bundle.manifest.generation
    golden = g.get("golden")
    if not golden:
        raise BundleError(f"bundle {bundle.path} carries no golden prompts; re-export it to selfcheck")
    gates = g.get("gates") or {}
    runs, skipped = select_runs(
        bundle,
        backends=backends or DEFAULT_BACKENDS,
        precisions=precisions,
        devices=devices,
        exclude=("torch",),
    )
    rows = []
    for backend, precision, device in runs:
        base = {"backend": backend, "device": device, "precision": precision, "max_abs": None}
        try:
            with bundle.runner(backend, precision, device) as r:
                row = selfcheck_row(r, golden, gates)
                base["format"] = r.format
        except EdgeportError as exc:
            skipped.append({"backend": backend, "device": device, "precision": precision, "reason": str(exc)})
            continue
        margin = float(golden.get("margin", GOLDEN_MARGIN))
        floor = row["export_time"].get("agreement", 1.0) - margin
        need = max(gates.get("fp32_agreement", 0.999), floor) if precision == "fp32" else floor
        rows.append(base | row | {"min_agreement": max(0.0, need)})
    return {
        "schema": SELFCHECK_SCHEMA,
        "task": "text-generation",
        "bundle": str(bundle.path),
        "model": bundle.manifest.model,
        "warnings": bundle.warnings,
        "golden": {
            "n": len(golden["prompts"]),
            "source": f"{len(golden['prompts'])} prompts x "
            f"{golden.get('new_tokens', '?')} greedy tokens + {len(golden['text']['ids'])} tokens of text",
            "evidence": golden.get("evidence"),
            "margin": golden.get("margin", GOLDEN_MARGIN),
        },
        "rows": rows,
        "skipped": skipped,
        "passed": bool(rows) and all(r["passed"] for r in rows),
        "device": environment(sorted({r[0] for r in runs})),
    }


def format_verify_table(report: dict) -> str:
    """The text table of a text-generation verify report (torch-free, so a --host report prints anywhere)."""
    from ..errors import safe_text

    d, ref = report["data"], report["reference"]
    lines = [
        f"verify {safe_text(report['bundle'])} on {d['n']} next tokens ({safe_text(d.get('kind'))}, "
        f"{safe_text(d['evidence'])}); PyTorch perplexity {ref['perplexity']:.3f}, greedy over "
        f"{ref['greedy_prompts']} prompts x {ref['greedy_tokens']} tokens",
        *(f"WARNING: {safe_text(w)}" for w in report.get("warnings", [])),
    ]
    head = f"{'backend':<12} {'device':<7} {'precision':<9} {'agree %':>8} {'ppl':>9} {'ppl +%':>7} {'greedy':>6}  result"
    lines += [head, "-" * len(head)]
    for r in report["rows"]:
        result = "PASS" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(
            f"{r['backend']:<12} {r['device']:<7} {r['precision']:<9} {r['agreement'] * 100:8.2f} "
            f"{r['perplexity']:9.3f} {r['perplexity_change'] * 100:7.2f} "
            f"{r['greedy_identical']}/{r['greedy_total']:<4}  {safe_text(result)}"
        )
    for s in report["skipped"]:
        lines.append(f"skipped {s['backend']}:{s['device']} {s['precision'] or ''}: {safe_text(s['reason'])}")
    lines.append("all passed" if report["passed"] else "FAILED")
    return "\n".join(lines)
