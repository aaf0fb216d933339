"""The int8 stage of an export: calibrate, quantize candidates, score, fall back, accept, time, prove.

For every format (through the format registry, never by name) each candidate
configuration is quantized on the calibration split, run through the
runtime's own runner on the selection split and scored with the task's
metrics against its int8 gates (the same gates ``verify`` applies), and timed
with the benchmark's own loop.  The **fastest candidate within the gate**
ships: on some CPUs the most accurate int8 configuration is slower than fp32
(the "quantization paradox"), so speed is measured, not assumed.

When no candidate of a format is within the gate, the few layers int8 hurts
most stay float (:mod:`.fallback`), the same layers on every format, until the
gate holds or too much of the compute would be float; past that the format
ships no int8 and the manifest says why.  The chosen artifact is then judged
once more on the eval split (the data ``verify`` uses, up to
``ACCEPT_MAX`` samples) with the same rule, so an export that accepts int8 is
one ``verify`` passes.  Random weights skip the fallback (their gate means
nothing): the fastest candidate near the best ships, marked outside the gate.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from .. import format_registry as registry
from ..errors import BackendUnavailableError, EdgeportError, ExportError
from ..formats.proof import prove_layers, size_ratio
from ..runtime.benchmark import measure, paired_ratios
from ..runtime.parity import Criteria, ParityAccumulator
from ..sources.data import first_batch
from . import fallback
from . import layer_report as lr
from .parity import reference

CANDIDATE_DIR = "int8-candidates"
CACHE_BYTES = 256 << 20  # selection samples held in memory while candidates are scored
ACCEPT_MAX = 20_000  # eval samples the final acceptance runs on (verify runs on all of them)
NEAR_BEST = 0.005  # with no candidate within the gate: candidates this close to the best one compete on speed


@dataclass
class Search:
    """One format's candidates, the pick, and (after a fallback) the re-quantized pick."""

    fmt: str
    fp32_speed: dict
    cands: list = field(default_factory=list)
    broken: dict = field(default_factory=dict)
    pick: dict | None = None
    seconds: float = 0.0
    n: int = 0  # candidate files written (unique names)


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


def _primary(ctx) -> str:
    for role in ctx.task.roles:
        found = ctx.signature.outputs_with_role(role)
        if found:
            return found[0].name
    return ctx.signature.outputs[0].name


def _score(ctx, runner, sel, gate: Criteria, name: str) -> dict:
    feeds, labels, ref = sel
    out = runner.run_all(feeds, 64)
    acc = ParityAccumulator(ctx.signature, gate, name, "int8", task=ctx.task)
    acc.update(ref, out, labels)
    res = acc.result()
    primary = _primary(ctx)
    return {
        "metrics": {k: v for k, v in res.metrics.items() if isinstance(v, (int, float)) or v is None},
        "accuracy": res.accuracy,
        "ref_accuracy": res.ref_accuracy,
        "agreement": res.agreement,
        "sqnr_db": _sqnr(ref[primary], out[primary]) if np.asarray(ref[primary]).dtype.kind == "f" else None,
        "within_gate": res.passed,
        "why_not": list(res.reasons),
    }


def _rank(ctx, c: dict) -> tuple:
    s = c["score"]
    sq = s["sqnr_db"] if s["sqnr_db"] is not None else 1e9
    return (*ctx.task.rank_key(s["metrics"]), sq)


def _near_best(ctx, cands: list[dict]) -> list[dict]:
    """Candidates within NEAR_BEST of the best on the ranking metrics (labels first, then the reference)."""
    key_best = max(_rank(ctx, c) for c in cands)
    return [c for c in cands if all(a >= b - NEAR_BEST for a, b in zip(_rank(ctx, c)[:2], key_best[:2]))]


def _cand_artifact(ctx, fmt: str, files: list[str]):
    """A candidate's files as an artifact, with its fp32 twin's batch bound (a .pte plans for it)."""
    bound = ctx.fp32(fmt).details.get("max_batch")
    return ctx.artifact(
        fmt, "int8", files[0], files[1:], {"max_batch": bound} if isinstance(bound, int) else {}
    )


def _choose(ctx, cands: list[dict]) -> dict:
    passing = [c for c in cands if c["score"]["within_gate"]]
    return max(passing or _near_best(ctx, cands), key=lambda c: c["throughput_per_s"])


# --------------------------------------------------------------------------- one candidate


def _candidate(ctx, s: Search, name: str, kwargs: dict, calibration, sel, gate, speed_feeds) -> dict:
    """Quantize, score and time one configuration of ``s.fmt``."""
    mod = registry.module(s.fmt)
    backend = registry.info(s.fmt).backend
    fp32 = ctx.fp32(s.fmt)
    suffix = "".join(fp32.file.rpartition("/")[2].partition(".")[1:]) or ".bin"
    rel = f"{CANDIDATE_DIR}/{s.fmt}/c{s.n}{suffix}"
    s.n += 1
    files, settings = mod.quantize(ctx, fp32, calibration, rel, **kwargs)
    art = _cand_artifact(ctx, s.fmt, files)
    with ctx.staged_bundle().runner(backend, "int8", "cpu", artifact=art) as r:
        score = _score(ctx, r, sel, gate, f"{s.fmt}/int8 {name}")
        t = measure(r, speed_feeds, seconds=ctx.calibration.speed_seconds)
    ctx.say(
        f"int8 {s.fmt} {name}: {ctx.task.summary(score['metrics']) or 'no metric'}, "
        f"{t['throughput_per_s']:,.0f}/s at batch {len(next(iter(speed_feeds.values())))}"
        + ("" if score["within_gate"] else " (outside the gate)")
    )
    return {
        "name": name,
        "kwargs": kwargs,
        "files": files,
        "settings": settings,
        "score": score,
        "throughput_per_s": t["throughput_per_s"],
        "p50_us": t["p50"],
    }


def _search(ctx, fmt: str, calibration, sel, gate, speed_feeds) -> Search:
    """Every candidate configuration of ``fmt``, scored and timed; the pick by the selection rule."""
    t0 = time.perf_counter()
    fp32 = ctx.fp32(fmt)
    with ctx.staged_bundle().runner(registry.info(fmt).backend, "fp32", "cpu", artifact=fp32) as r:
        s = Search(fmt, measure(r, speed_feeds, seconds=ctx.calibration.speed_seconds))
    for name, kwargs in registry.module(fmt).int8_candidates(ctx.calibration.method, ctx):
        try:
            s.cands.append(_candidate(ctx, s, name, kwargs, calibration, sel, gate, speed_feeds))
        except EdgeportError as exc:  # one candidate failing leaves the others in the running
            s.broken[name] = str(exc)[:300]
            ctx.say(f"int8 {fmt} {name}: failed ({s.broken[name][:160]})")
    if not s.cands:
        raise ExportError(
            f"every {fmt} int8 candidate failed: " + "; ".join(f"{k}: {v[:120]}" for k, v in s.broken.items())
        )
    s.pick = _choose(ctx, s.cands)
    s.seconds = time.perf_counter() - t0
    return s


# --------------------------------------------------------------------------- the stage


def int8_stage(
    ctx, plan, formats: list[str], *, explicit: bool = True, failures=None
) -> tuple[list, dict, dict, dict]:
    """(int8 artifacts, calibration block, layer report, speed summary) for ``formats``.

    A format whose quantization fails, or that no fallback brings within the gate, is recorded in
    ``failures`` and left out, unless ``explicit`` (then its error is the export's).
    """

    failures = failures if failures is not None else []
    cfg = ctx.calibration
    gates = ctx.task.gates_for("int8", ctx.gates)
    gate = Criteria(None, None, gates)
    sel = _selection(ctx, plan)
    speed_feeds = _speed_feeds(sel[0], min(cfg.speed_batch, ctx.signature.max_batch))
    searches: dict[str, Search] = {}
    for fmt in formats:
        try:
            with ctx.stage(f"int8 {fmt}"):
                searches[fmt] = _search(ctx, fmt, plan.calibration, sel, gate, speed_feeds)
        except (ExportError, BackendUnavailableError) as exc:
            ctx.record_failure(failures, fmt, "int8", "int8", exc, explicit)
    with ctx.stage("int8 fallback"):
        kept, history = _fallback(ctx, plan, sel, gate, speed_feeds, searches)
    with ctx.stage("int8 acceptance"):
        accepted = _accept(ctx, plan, searches, gates)
    artifacts, speed = [], {}
    for fmt, s in searches.items():
        art = _ship(ctx, s, speed_feeds, kept, history, accepted.get(fmt), failures, explicit)
        if art is not None:
            artifacts.append(art)
            speed[fmt] = {"speedup_vs_fp32": art.details["speedup_vs_fp32"], "selected": s.pick["name"]}
    shutil.rmtree(ctx.staging / CANDIDATE_DIR, ignore_errors=True)
    with ctx.stage("int8 layer report"):
        report = lr.layer_report(ctx, artifacts, first_batch(plan.selection, min(len(plan.selection), 64))[0])
    calibration = {
        "size": len(plan.calibration),
        "method": cfg.method,
        "seed": cfg.seed,
        "source": plan.calibration.identity(),
        "selection": {k: v for k, v in plan.selection.identity().items() if k not in ("indices", "files")},
        "gate": gates,
        "task": ctx.task.name,
        "float_layers": fallback.describe(ctx.scratch.get("sensitivity", []), kept),
        "fallback": history,
    }
    return artifacts, calibration, report, speed


def _ship(ctx, s: Search, speed_feeds, kept, history, accepted, failures: list, explicit: bool):
    """The format's int8 artifact installed and proven, or None with the reason in ``failures``."""
    why = _refusal(ctx, s, accepted, kept, history)
    if why:
        exc = ExportError(f"no {s.fmt} int8 within the gate: {why}")
        ctx.record_failure(failures, s.fmt, "int8", "int8", exc, explicit)
        return None
    try:
        with ctx.stage(f"int8 {s.fmt}"):
            return _finish(ctx, s, speed_feeds, kept, history, accepted)
    except (ExportError, BackendUnavailableError) as exc:  # e.g. the proof: not the int8 it was asked for
        ctx.record_failure(failures, s.fmt, "int8", "int8", exc, explicit)
        return None


def _fallback(ctx, plan, sel, gate, speed_feeds, searches) -> tuple[list[str], list[dict]]:
    """Keep the most sensitive layers float until every format is within the gate (see :mod:`.fallback`);
    the float set found is then applied to every format."""
    failing = {f: s.pick for f, s in searches.items() if not s.pick["score"]["within_gate"]}
    if not failing or ctx.random_init or not ctx.calibration.fallback:
        return [], []
    # the fallback starts from each format's first (standard) configuration: per-channel QDQ for ONNX,
    # NNCF's mixed preset, ... (a float layer inside a QOperator graph loses its neighbours' parameters)
    failing = {f: searches[f].cands[0] for f in failing}
    for s in searches.values():
        s.pick = s.cands[0] if s.fmt in failing else s.pick
    ctx.say(f"int8 outside the gate on {', '.join(failing)}: keeping the most sensitive layers float")

    def requantize(fmt: str, cand: dict, kept: list[str]) -> dict:
        s = searches[fmt]
        kwargs = {**cand["kwargs"], "float_modules": tuple(kept)}
        return _candidate(ctx, s, f"{cand['name'].split(' +')[0]} +{len(kept)} float", kwargs,
                          ctx.scratch["calibration_source"], sel, gate, speed_feeds)  # fmt: skip

    ctx.scratch["calibration_source"] = plan.calibration
    try:
        kept, history = fallback.search(
            ctx, plan, sel, failing, requantize, lambda c: c["score"]["within_gate"]
        )
    except EdgeportError as exc:
        return [], [{"stopped": f"the fallback could not run: {str(exc)[:300]}"}]
    if kept:
        for fmt, s in searches.items():  # the same float layers on every format
            try:
                s.pick = requantize(fmt, s.pick, kept)
            except EdgeportError as exc:
                history.append({"format": fmt, "stopped": str(exc)[:300]})
            s.cands.append(s.pick)
    ctx.scratch["float_plan"] = tuple(kept)
    return kept, history


def _accept(ctx, plan, searches: dict, gates: dict) -> dict:
    """Each pick judged on the eval split (what verify uses, up to ACCEPT_MAX samples) by the same rule."""
    from ..specs import BATCH  # noqa: F401

    picks = {f: s.pick for f, s in searches.items() if s.pick["score"]["within_gate"]}
    if not picks:
        return {}
    src = plan.eval
    if len(src) > ACCEPT_MAX:
        src = src.subset(np.arange(ACCEPT_MAX), src.role)
    arts = {f: _cand_artifact(ctx, f, c["files"]) for f, c in picks.items()}
    bundle = ctx.staged_bundle(tuple(arts.values()))
    accs = {
        f: ParityAccumulator(ctx.signature, Criteria(None, None, gates), f, "int8", task=ctx.task)
        for f in arts
    }
    labelled = not ctx.random_init
    from ..runtime.verify import default_batch

    batch = default_batch(bundle)
    runners = {
        f: bundle.runner(registry.info(f).backend, "int8", "cpu", artifact=a).load() for f, a in arts.items()
    }
    try:
        with bundle.runner("torch", "fp32", "cpu") as ref_runner:
            for feeds, labels in src.batches(batch):
                labels = labels if labelled else None
                if labels is not None and ctx.label_map is not None:
                    labels = ctx.label_map[labels]
                ref = ref_runner.run_all(feeds)
                for f, r in runners.items():
                    accs[f].update(ref, r.run_all(feeds), labels)
    finally:
        for r in runners.values():
            r.close()
    return {f: acc.result() for f, acc in accs.items()}


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a rate ``p`` measured on ``n`` samples."""
    if n <= 0:
        return (0.0, 1.0)
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def _refusal(ctx, s: Search, accepted, kept, history) -> str:
    """Why ``s`` ships no int8 ("" when it ships)."""
    score = s.pick["score"]
    if not score["within_gate"] and (kept or history) and not ctx.random_init:
        stopped = next((h["stopped"] for h in history if "stopped" in h), "")
        return f"{'; '.join(score['why_not'][:2])} even with {len(kept)} layer(s) kept float" + (
            f" ({stopped})" if stopped else ""
        )
    if accepted is not None and not accepted.passed and not ctx.random_init:
        return f"within the gate on the selection split, but on the eval split (what verify uses): {'; '.join(accepted.reasons[:2])}"
    return ""


def _finish(ctx, s: Search, speed_feeds, kept, history, accepted):
    """Install the pick under the format's int8 name, prove it, time it at batch 1 too, describe it."""
    mod = registry.module(s.fmt)
    fp32 = ctx.fp32(s.fmt)
    pick = s.pick
    final = _install(ctx, s.fmt, mod, pick)
    proof = mod.prove_int8(ctx, ctx.staging / final.file)
    layers = prove_layers(final.file, mod.int8_layers(ctx.staging / final.file), tuple(kept))
    speed = _paired_speed(ctx, s.fmt, fp32, final, speed_feeds)
    speedup, speedup_one, margin = speed["batch"], speed["batch1"], speed["margin"]
    details = {
        **pick["settings"],
        "selected": pick["name"],
        "selection_rule": "fastest within the gate"
        if pick["score"]["within_gate"]
        else "fastest within 0.5 pt of the best (none within the gate)",
        "candidates": {
            c["name"]: {
                **c["score"],
                "throughput_per_s": round(c["throughput_per_s"], 1),
                "p50_us": round(c["p50_us"], 2),
            }
            for c in s.cands
        },
        "failed_candidates": s.broken,
        "float_layers": fallback.describe(ctx.scratch.get("sensitivity", []), kept),
        "metric_before_fallback": (
            history[0]["formats"].get(s.fmt, {}).get("metrics")
            if history and "formats" in history[0]
            else None
        ),
        "speed_batch": len(next(iter(speed_feeds.values()))),
        "fp32_throughput_per_s": round(s.fp32_speed["throughput_per_s"], 1),
        "speedup_vs_fp32": round(speedup, 3),
        "speedup_vs_fp32_batch1": round(speedup_one, 3),
        "speed_noise_margin": round(margin, 3),
        "speed_method": f"int8/fp32 throughput, median of {SPEED_ROUNDS} interleaved rounds per batch size",
        "slower_than_fp32": speedup < 1 - margin and speedup_one < 1 - margin,
        "selection_accuracy": pick["score"]["accuracy"],
        "selection_agreement": pick["score"]["agreement"],
        "selection_metrics": pick["score"]["metrics"],
        "acceptance": _acceptance(accepted),
        "proof": proof,
        "layers": layers,
        "size_ratio": round(size_ratio(final, fp32), 4),
        "quantize_seconds": round(s.seconds, 2),
    }
    if details["slower_than_fp32"]:
        details["recommendation"] = "not recommended: slower than fp32 at batch 1 and at the throughput batch"
    final = ctx.artifact(s.fmt, "int8", final.file, [e.path for e in final.extra_files], details)
    ctx.artifacts.append(final)
    return final


SPEED_ROUNDS = 3  # interleaved fp32/int8 timing rounds per batch size for the shipped pick


def _paired_speed(ctx, fmt: str, fp32, final, speed_feeds: dict) -> dict:
    """int8/fp32 throughput at batch 1 and at the throughput batch, timed in turns (fp32, int8, then
    int8, fp32, ...) so a busy spell slows both alike; the medians, and a noise margin from their spread."""
    backend = registry.info(fmt).backend
    bundle = ctx.staged_bundle((final,))
    out, spreads = {}, []
    with (
        bundle.runner(backend, "fp32", "cpu", artifact=fp32) as a,
        bundle.runner(backend, "int8", "cpu", artifact=final) as b,
    ):
        for key, feeds in (("batch1", _speed_feeds(speed_feeds, 1)), ("batch", speed_feeds)):
            seconds = ctx.calibration.speed_seconds / 2
            ratios = paired_ratios(a, b, feeds, rounds=SPEED_ROUNDS, seconds=seconds, min_iters=3)
            out[key] = float(np.median(ratios))
            q1, q3 = np.percentile(ratios, [25, 75])
            spreads.append((q3 - q1) / 2)
    out["margin"] = float(min(0.25, max(0.03, max(spreads))))
    return out


def _acceptance(res) -> dict | None:
    if res is None:
        return None
    out = {
        "n": res.n,
        "passed": res.passed,
        "metrics": {k: v for k, v in res.metrics.items() if isinstance(v, (int, float))},
    }
    rate = res.metrics.get(
        "agreement", res.metrics.get("token_agreement", res.metrics.get("pixel_agreement"))
    )
    if isinstance(rate, (int, float)) and res.n:
        lo, hi = wilson(float(rate), res.n)
        out["agreement_95ci"] = [round(lo, 5), round(hi, 5)]
    return out


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
