"""The int8 stage of an export: calibrate, quantize candidates, score, time, select, prove, report.

For every format (through the format registry, never by name) each candidate
configuration is quantized on the calibration split, run through the
runtime's own runner on the selection split and scored (accuracy where labels
exist, else top-1 agreement with fp32 and output SQNR), and timed with the
benchmark's own loop.  The **fastest candidate within the accuracy gate**
ships: on some CPUs the most accurate int8 configuration is slower than fp32
(the "quantization paradox"), so speed is measured, not assumed.  If no
candidate passes the gate, the fastest of those within 0.5 pt of the most
accurate ships, and verify says the gate failed.  For random weights, accuracy
means nothing: agreement with fp32 (and SQNR) decide.
"""

from __future__ import annotations

import math
import shutil
import time

import numpy as np

from ..errors import EdgeportError, ExportError
from ..formats import registry
from ..formats.proof import prove_layers, size_ratio
from ..runtime.benchmark import measure
from ..runtime.parity import Criteria, ParityAccumulator
from ..sources.data import first_batch
from . import layer_report as lr
from .parity import reference

CANDIDATE_DIR = "int8-candidates"
CACHE_BYTES = 256 << 20  # selection samples held in memory while candidates are scored


def _sqnr(ref: np.ndarray, out: np.ndarray) -> float | None:
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    noise = float(np.sum((ref - out) ** 2))
    if noise == 0:
        return None  # identical: infinite SQNR
    return round(10 * math.log10(max(float(np.sum(ref**2)), 1e-30) / noise), 2)


def _selection(ctx, plan):
    """Selection feeds (cached in memory, within a budget), their labels and the fp32 reference outputs."""
    values = ctx.signature.example_values(1)
    per = sum(int(np.prod(s.concrete_shape(values))) * s.np_dtype.itemsize for s in ctx.signature.inputs)
    n = max(1, min(len(plan.selection), ctx.calibration.selection_size, CACHE_BYTES // max(per, 1)))
    feeds, labels = first_batch(plan.selection, n)
    if ctx.random_init:
        labels = None  # random weights: accuracy means nothing; agreement with fp32 and SQNR decide
    elif labels is not None and ctx.label_map is not None:
        labels = ctx.label_map[labels]
    return feeds, labels, reference(ctx.staged_bundle(), feeds)


def _speed_feeds(feeds: dict, batch: int) -> dict:
    n = len(next(iter(feeds.values())))
    reps = -(-batch // n)
    return {k: np.ascontiguousarray(np.concatenate([v] * reps)[:batch]) for k, v in feeds.items()}


def _score(ctx, runner, sel, gate: Criteria, name: str) -> dict:
    feeds, labels, ref = sel
    out = runner.run_all(feeds, 64)
    acc = ParityAccumulator(ctx.signature, gate, name, "int8", task=ctx.task)
    acc.update(ref, out, labels)
    res = acc.result()
    primary = ctx.signature.outputs[0].name
    for role in ctx.task.roles:
        found = ctx.signature.outputs_with_role(role)
        if found:
            primary = found[0].name
            break
    return {
        "metrics": {k: v for k, v in res.metrics.items() if isinstance(v, (int, float)) or v is None},
        "accuracy": res.accuracy,
        "ref_accuracy": res.ref_accuracy,
        "agreement": res.agreement,
        "sqnr_db": _sqnr(ref[primary], out[primary]) if np.asarray(ref[primary]).dtype.kind == "f" else None,
        "within_gate": res.passed,
        "why_not": list(res.reasons),
    }


NEAR_BEST = 0.005  # with no candidate within the gate: candidates this close to the best one compete on speed


def _near_best(ctx, cands: list[dict]) -> list[dict]:
    """Candidates within NEAR_BEST of the best on the ranking metrics (labels first, then the reference)."""
    key_best = max(_rank(ctx, c) for c in cands)

    def close(c):
        k = _rank(ctx, c)
        return all(a >= b - NEAR_BEST for a, b in zip(k[:2], key_best[:2]))

    return [c for c in cands if close(c)]


def _rank(ctx, c: dict) -> tuple:
    s = c["score"]
    sq = s["sqnr_db"] if s["sqnr_db"] is not None else 1e9
    return (*ctx.task.rank_key(s["metrics"]), sq)


def int8_stage(
    ctx, plan, formats: list[str], *, explicit: bool = True, failures=None
) -> tuple[list, dict, dict, dict]:
    """(int8 artifacts, calibration block, layer report, speed summary) for ``formats``.

    A format whose quantization fails is recorded in ``failures`` and left out, unless ``explicit``.
    """
    from ..errors import BackendUnavailableError, ExportError
    from .api import _fail

    cfg = ctx.calibration
    gates = ctx.task.gates_for("int8", ctx.gates)
    gate = Criteria(None, None, gates)
    sel = _selection(ctx, plan)
    speed_feeds = _speed_feeds(sel[0], min(cfg.speed_batch, ctx.signature.max_batch))
    artifacts, speed = [], {}
    for fmt in formats:
        try:
            art, summary = _quantize_format(ctx, fmt, plan.calibration, sel, speed_feeds, gate)
        except (ExportError, BackendUnavailableError) as exc:
            _fail(ctx, failures if failures is not None else [], fmt, "int8", "int8", exc, explicit)
            continue
        artifacts.append(art)
        speed[fmt] = summary
    shutil.rmtree(ctx.staging / CANDIDATE_DIR, ignore_errors=True)
    report = lr.layer_report(ctx, artifacts, first_batch(plan.selection, min(len(plan.selection), 64))[0])
    calibration = {
        "size": len(plan.calibration),
        "method": cfg.method,
        "seed": cfg.seed,
        "source": plan.calibration.identity(),
        "selection": {k: v for k, v in plan.selection.identity().items() if k not in ("indices", "files")},
        "gate": gates,
        "task": ctx.task.name,
    }
    return artifacts, calibration, report, speed


def _quantize_format(ctx, fmt: str, calibration, sel, speed_feeds, gate):
    mod = registry.module(fmt)
    backend = registry.info(fmt).backend
    fp32 = ctx.fp32(fmt)
    bundle = ctx.staged_bundle()
    cands = []
    t0 = time.perf_counter()
    with bundle.runner(backend, "fp32", "cpu", artifact=fp32, threads=None) as r:
        fp32_speed = measure(r, speed_feeds, seconds=ctx.calibration.speed_seconds)
    suffix = "".join(fp32.file.rpartition("/")[2].partition(".")[1:]) or ".bin"
    broken = {}
    for i, (name, kwargs) in enumerate(mod.int8_candidates(ctx.calibration.method)):
        rel = f"{CANDIDATE_DIR}/{fmt}/c{i}{suffix}"
        try:
            files, settings = mod.quantize(ctx, fp32, calibration, rel, **kwargs)
            art = ctx.artifact(fmt, "int8", files[0], files[1:], {})
            with bundle.runner(backend, "int8", "cpu", artifact=art) as r:
                score = _score(ctx, r, sel, gate, f"{fmt}/int8 {name}")
                t = measure(r, speed_feeds, seconds=ctx.calibration.speed_seconds)
        except EdgeportError as exc:  # one candidate failing leaves the others in the running
            broken[name] = str(exc)[:300]
            ctx.say(f"int8 {fmt} {name}: failed ({broken[name][:160]})")
            continue
        cands.append(
            {
                "name": name,
                "files": files,
                "settings": settings,
                "score": score,
                "throughput_per_s": t["throughput_per_s"],
                "p50_us": t["p50"],
            }
        )
        ctx.say(
            f"int8 {fmt} {name}: {ctx.task.summary(score['metrics']) or 'no metric'}, "
            f"{t['throughput_per_s']:,.0f}/s at batch {len(next(iter(speed_feeds.values())))}"
            + ("" if score["within_gate"] else " (outside the gate)")
        )
    if not cands:
        raise ExportError(
            f"every {fmt} int8 candidate failed: " + "; ".join(f"{k}: {v[:120]}" for k, v in broken.items())
        )
    passing = [c for c in cands if c["score"]["within_gate"]]
    near = passing or _near_best(ctx, cands)
    pick = max(near, key=lambda c: c["throughput_per_s"])
    final = _install(ctx, fmt, mod, pick)
    proof = mod.prove_int8(ctx, ctx.staging / final.file)
    layers = prove_layers(
        final.file, mod.int8_layers(ctx.staging / final.file), ctx.scratch.get("float_plan", ())
    )
    ratio = size_ratio(final, fp32)
    details = {
        **pick["settings"],
        "selected": pick["name"],
        "selection_rule": "fastest within the accuracy gate"
        if passing
        else "fastest within 0.5 pt of the best (none within the gate)",
        "candidates": {
            c["name"]: {
                **c["score"],
                "throughput_per_s": round(c["throughput_per_s"], 1),
                "p50_us": round(c["p50_us"], 2),
            }
            for c in cands
        },
        "failed_candidates": broken,
        "speed_batch": len(next(iter(speed_feeds.values()))),
        "fp32_throughput_per_s": round(fp32_speed["throughput_per_s"], 1),
        "speedup_vs_fp32": round(pick["throughput_per_s"] / max(fp32_speed["throughput_per_s"], 1e-9), 3),
        "selection_accuracy": pick["score"]["accuracy"],
        "selection_agreement": pick["score"]["agreement"],
        "selection_metrics": pick["score"]["metrics"],
        "proof": proof,
        "layers": layers,
        "size_ratio": round(ratio, 4),
        "quantize_seconds": round(time.perf_counter() - t0, 2),
    }
    details["slower_than_fp32"] = details["speedup_vs_fp32"] < 1.0
    final = ctx.artifact(fmt, "int8", final.file, [e.path for e in final.extra_files], details)
    ctx.artifacts.append(final)
    return final, {"speedup_vs_fp32": details["speedup_vs_fp32"], "selected": pick["name"]}


def _install(ctx, fmt: str, mod, pick: dict):
    """Move the chosen candidate's files to the format's int8 names."""
    target = mod.INT8_FILE
    names = [target] + ([target.removesuffix(".xml") + ".bin"] if len(pick["files"]) > 1 else [])
    for src, dst in zip(pick["files"], names, strict=True):
        ctx.path(dst)
        (ctx.staging / src).replace(ctx.staging / dst)
    scratch = ctx.scratch.get(f"{fmt}_int8")
    if scratch and pick["files"][0] in scratch:
        scratch[target] = scratch.pop(pick["files"][0])
    return ctx.artifact(fmt, "int8", names[0], names[1:], {})
