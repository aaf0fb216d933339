"""``edgeport pipeline --model tiny-lm`` (or ``hf:DIR``): [train ->] export fp32 + int8 + int4 weight-only
-> verify -> bench -> sample generations -> report, with the text-generation gates.

Run folder: ``model/`` (the trained tiny-lm, when it trains), ``bundle/``,
``verify.json``, ``bench.json``, ``generations.json``, ``report.md``,
``report.html``, ``plots/``, ``pipeline.json``.  ``--resume`` reuses stages
whose outputs are there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import fsutil
from .errors import EdgeportError, ParityError

SAMPLE_PROMPT = "Return the"
SAMPLE_TOKENS = 40


@dataclass(frozen=True, kw_only=True)
class LMPipelineConfig:
    """What the decoder pipeline runs on; the CLI builds it from its options.

    ``export``: an :class:`edgeport.lm.export.LMExportConfig` (None: its defaults); ``gates``: gate
    overrides for verify (None: the bundle's own); ``bench``: an
    :class:`edgeport.runtime.lm_bench.LMBenchConfig` (None: its defaults).
    """

    model_ref: str | None = "tiny-lm"
    run: str | None = None  # an hf: folder to export instead of a reference
    random_init: bool = False
    tokenizer: str | None = None
    seed: int = 0
    steps: int | None = None  # tiny-lm training steps (None: its default)
    export: object = None
    gates: dict | None = None
    bench: object = None
    backends: tuple[str, ...] | None = None
    data: str | None = None  # held-out text for verify (None: the bundle's own)


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[edgeport] {msg}", file=sys.stderr, flush=True)


def _train(run: Path, cfg: LMPipelineConfig, resume: bool, result, progress: bool) -> str:
    """The model reference to export: the trained tiny-lm folder, or what --model named."""
    if cfg.model_ref != "tiny-lm" or cfg.random_init:
        return cfg.model_ref or cfg.run
    folder = run / "model"
    t0 = time.perf_counter()
    if resume and (folder / "train.json").is_file():
        result.skipped.append("train")
        _log(f"train: reusing {folder}", progress)
    else:
        from .lm.train import LMTrainConfig, train_tiny_lm

        config = LMTrainConfig(seed=cfg.seed, **({"steps": cfg.steps} if cfg.steps else {}))
        _log(f"train: tiny-lm, {config.steps} steps", progress)
        info = train_tiny_lm(config, out=folder, force=True, progress=progress)
        _log(
            f"train: held-out perplexity {info['heldout_perplexity']:.2f} in {info['train_seconds']:.0f} s",
            progress,
        )
    result.stages["train"] = time.perf_counter() - t0
    return f"hf:{folder}"


def _export(run: Path, ref: str, cfg: LMPipelineConfig, resume: bool, result, progress: bool):
    from .bundle import load_bundle
    from .lm.export import LMExportConfig, export_lm

    t0 = time.perf_counter()
    folder = run / "bundle"
    if resume and (folder / "manifest.json").is_file():
        try:
            bundle = load_bundle(folder)
            bundle.trusted = True
            result.skipped.append("export")
            return bundle
        except EdgeportError as exc:
            _log(f"export: the bundle cannot be reused ({exc}); exporting again", progress)
    try:
        bundle = export_lm(
            ref,
            folder,
            config=cfg.export or LMExportConfig(),
            random_init=cfg.random_init,
            tokenizer=cfg.tokenizer,
            force=True,
            progress=progress,
        )
    except ParityError as exc:
        result.gates.append(f"export parity: {exc}")
        bundle = None
    result.stages["export"] = time.perf_counter() - t0
    return bundle


def _samples(bundle, backends) -> dict:
    """One greedy generation per artifact (text when the bundle has a tokenizer, else ids)."""
    from .runtime.decoders import DEFAULT_BACKENDS
    from .runtime.plan import select_runs

    runs, _ = select_runs(bundle, backends=backends or DEFAULT_BACKENDS)
    out = {}
    for backend, precision, device in runs:
        with bundle.runner(backend, precision, device) as r:
            prompt = SAMPLE_PROMPT if r.tokenizer is not None else [1, 2, 3, 4, 5]
            g = r.generate(prompt, min(SAMPLE_TOKENS, r.max_context - 8), ignore_eos=True)
            out[f"{backend}:{device} {r.format}/{precision}"] = {
                "prompt": prompt,
                "tokens": g.tokens,
                "text": g.text,
            }
    return out


def run_lm_pipeline(
    out,
    config: LMPipelineConfig | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
):
    """The whole job for a decoder into the run folder ``out``; returns a
    :class:`~edgeport.pipeline.PipelineResult`."""
    from .pipeline import PipelineResult, _open_run

    cfg = config or LMPipelineConfig()
    run = Path(out)
    result = PipelineResult(run_dir=run)
    t_all = time.perf_counter()
    resume = _open_run(run, force, resume)
    ref = _train(run, cfg, resume, result, progress)
    bundle = _export(run, ref, cfg, resume, result, progress)
    if bundle is not None:
        _verify_bench(run, bundle, cfg, result, progress)
    from .report.writer import write_report

    t0 = time.perf_counter()
    _summary(run, result, t_all)
    md, html = write_report(run, force=True)
    result.stages["report"] = time.perf_counter() - t0
    _summary(run, result, t_all)
    _log(f"report: {md} and {html}", progress)
    return result


def _verify_bench(run: Path, bundle, cfg: LMPipelineConfig, result, progress: bool) -> None:
    from .runtime.benchmark import bench
    from .verification import verify

    backends = list(cfg.backends) if cfg.backends else None
    t0 = time.perf_counter()
    _log("verify: every decoder against transformers on held-out text", progress)
    report = verify(bundle, data=cfg.data, backends=backends, gates=cfg.gates, progress=progress)
    fsutil.write_json(run / "verify.json", report)
    for row in report["rows"]:
        if not row["passed"]:
            result.gates.append(
                f"{row['precision']} gate: {row['backend']}:{row['device']} "
                f"{row['format']}/{row['precision']}: {'; '.join(row['reasons'])}"
            )
    result.stages["verify"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _log("bench: time to first token and decode tokens/s", progress)
    fsutil.write_json(run / "bench.json", bench(bundle, backends=backends, lm=cfg.bench, progress=progress))
    result.stages["bench"] = time.perf_counter() - t0
    fsutil.write_json(run / "generations.json", _samples(bundle, backends))


def _summary(run: Path, result, t_all: float) -> None:
    fsutil.write_json(
        run / "pipeline.json",
        {
            "task": "text-generation",
            "passed": result.passed,
            "gates": result.gates,
            "stages_seconds": {k: round(v, 3) for k, v in result.stages.items()},
            "skipped": result.skipped,
            "total_seconds": round(time.perf_counter() - t_all, 3),
        },
    )
