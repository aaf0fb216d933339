"""``edgeport pipeline``: data -> trained run -> bundle (fp32 + int8) -> verify -> bench -> report.

Every stage writes its output into the run folder before the next starts,
so a failed run can be inspected, and ``resume=True`` skips the stages whose
outputs are already there.  Gates (parity, int8 accuracy drop) are collected
and returned, one line each; the CLI exits 1 when any failed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import BenchConfig, CalibrationConfig, ExportConfig, TrainConfig
from .errors import ConfigError, ParityError

BUNDLE_DIR = "bundle"


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    int8: bool = True
    backends: tuple[str, ...] | None = None  # None: every available backend
    max_accuracy_drop: float = 0.2  # points of accuracy an int8 artifact may lose
    atol: float = 1e-5
    batch_sizes: tuple[int, ...] = (1, 256)
    # Shorter than `edgeport bench`'s defaults so the whole pipeline fits in
    # about three minutes on two cores; `edgeport bench` measures longer.
    bench_min_seconds: float = 1.0
    bench_min_iters: int = 100
    bench_warmup_seconds: float = 0.2


@dataclass
class PipelineResult:
    run_dir: Path
    gates: list[str] = field(default_factory=list)  # one line per failed gate
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    skipped: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.gates


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[edgeport] {msg}", flush=True)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def run_pipeline(
    *,
    out: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    config: PipelineConfig | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> PipelineResult:
    from . import checkpoint as ckpt
    from .data import load_mnist

    config = config or PipelineConfig()
    config.train.validate()
    if not 0 <= config.max_accuracy_drop <= 100:
        raise ConfigError(
            f"--max-accuracy-drop must be between 0 and 100 points, got {config.max_accuracy_drop}"
        )
    if not config.atol > 0:
        raise ConfigError(f"--atol must be positive, got {config.atol}")
    from .runtime.registry import BACKENDS

    unknown = [b for b in config.backends or () if b not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    run = Path(out)
    resuming = resume and (run / ckpt.TRAIN_FILE).is_file() and (run / ckpt.WEIGHTS_FILE).is_file()
    if not resuming:
        ckpt.prepare_target(run, force, what="run folder")
    result = PipelineResult(run_dir=run)
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    data = load_mnist(data_dir)
    result.stages["data"] = time.perf_counter() - t0

    # 1. train
    t0 = time.perf_counter()
    if resuming:
        model, info = ckpt.load_run(run)
        result.skipped.append("train")
        _log(f"train: reusing {run} (test accuracy {info['test_accuracy'] * 100:.2f}%)", progress)
    else:
        from .train import fit, save_run

        _log(f"train: {config.train.model}, {config.train.epochs} epochs", progress)
        model, info = fit(config.train, data, progress=progress)
        save_run(run, model, info, force=True)
        _log(
            f"train: test accuracy {info['test_accuracy'] * 100:.2f}% in {info['train_seconds']:.1f} s",
            progress,
        )
    result.stages["train"] = time.perf_counter() - t0

    # 2. grid of predictions (cheap, and the report wants it)
    _prediction_grid(model, data, info, run / "grid.png")

    # 3. export (+ int8)
    from .export.api import export
    from .export.bundle import load_bundle

    t0 = time.perf_counter()
    bundle_dir = run / BUNDLE_DIR
    bundle = None
    if resume and (bundle_dir / "manifest.json").is_file():
        try:
            bundle = load_bundle(bundle_dir)
            has_int8 = any(a.precision == "int8" for a in bundle.artifacts)
            if config.int8 and not has_int8:
                bundle = None
            else:
                result.skipped.append("export")
                _log(f"export: reusing {bundle_dir}", progress)
        except Exception:
            bundle = None
    if bundle is None:
        _log(
            "export: TorchScript, ONNX, OpenVINO" + (" + int8 (calibrated)" if config.int8 else ""), progress
        )
        try:
            bundle = export(
                run=run,
                out=bundle_dir,
                config=ExportConfig(int8=config.int8, atol=config.atol, rtol=config.atol),
                calibration=CalibrationConfig() if config.int8 else None,
                data=data,
                force=True,
                progress=progress,
            )
        except ParityError as exc:
            result.gates.append(f"export parity: {exc}")
            result.stages["export"] = time.perf_counter() - t0
            _write_json(run / "pipeline.json", _summary(result, config, t_all))
            return result
    result.stages["export"] = time.perf_counter() - t0

    # 4. devices + verify
    from .runtime.registry import list_devices
    from .runtime.verify import verify

    devices = list_devices()
    _write_json(run / "devices.json", devices)
    t0 = time.perf_counter()
    _log("verify: every backend x precision x device on the MNIST test set", progress)
    report = verify(
        bundle,
        data=(data.test_images, data.test_labels),
        backends=list(config.backends) if config.backends else None,
        atol=config.atol,
        max_accuracy_drop=config.max_accuracy_drop / 100.0,
        progress=progress,
    )
    _write_json(run / "verify.json", report)
    for row in report.get("rows", []):
        if not row.get("passed", False):
            name = f"{row.get('backend')}:{row.get('device')} {row.get('format')}/{row.get('precision')}"
            why = "; ".join(row.get("reasons") or []) or "failed"
            kind = "int8 accuracy" if row.get("precision") == "int8" else "parity"
            result.gates.append(f"{kind} gate: {name}: {why}")
    result.stages["verify"] = time.perf_counter() - t0

    # 5. bench
    from .runtime.benchmark import bench

    t0 = time.perf_counter()
    _log(f"bench: batch sizes {', '.join(map(str, config.batch_sizes))}", progress)
    bench_report = bench(
        bundle,
        backends=list(config.backends) if config.backends else None,
        config=BenchConfig(
            batch_sizes=config.batch_sizes,
            warmup_seconds=config.bench_warmup_seconds,
            min_iters=config.bench_min_iters,
            min_seconds=config.bench_min_seconds,
        ),
        progress=progress,
    )
    _write_json(run / "bench.json", bench_report)
    result.stages["bench"] = time.perf_counter() - t0

    # 6. report
    from .report.writer import write_report

    t0 = time.perf_counter()
    _write_json(run / "pipeline.json", _summary(result, config, t_all))
    md, html = write_report(run)
    result.stages["report"] = time.perf_counter() - t0
    _write_json(run / "pipeline.json", _summary(result, config, t_all))
    _log(f"report: {md} and {html}", progress)
    return result


def _summary(result: PipelineResult, config: PipelineConfig, t_all: float) -> dict:
    return {
        "passed": result.passed,
        "gates": result.gates,
        "stages_seconds": {k: round(v, 3) for k, v in result.stages.items()},
        "skipped": result.skipped,
        "total_seconds": round(time.perf_counter() - t_all, 3),
        "config": asdict(config),
    }


def _prediction_grid(model, data, info: dict, out: Path) -> None:
    import numpy as np
    import torch

    from .report.grid import prediction_grid

    idx = np.random.default_rng(0).choice(len(data.test_images), 16, replace=False)
    with torch.inference_mode():
        pred = model(torch.from_numpy(data.preprocessing.apply(data.test_images[idx]))).argmax(1).numpy()
    prediction_grid(data.test_images[idx], data.test_labels[idx], pred, out, labels=info.get("labels"))
