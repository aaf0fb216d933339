"""``edgeport pipeline``: [train ->] export (fp32 + int8) -> verify -> bench -> report, with gates.

Training applies to registry models only (the seed workload); a model you
bring (``--model`` with ``--weights``) starts at export, on your data.  Every
stage writes its output into the run folder before the next starts, so a
failed run can be inspected, and ``resume=True`` skips the stages whose
outputs are already there (and says why when one has to be redone).  Gates
(parity, int8 accuracy drop) are collected and returned, one line each.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import fsutil, trust
from .config import BenchConfig, CalibrationConfig, ExportConfig, TrainConfig
from .errors import ConfigError, EdgeportError, ParityError

BUNDLE_DIR = "bundle"
FILES = (
    "train.json",
    "model.safetensors",
    "bundle/",
    "verify.json",
    "bench.json",
    "devices.json",
    "grid.png",
    "samples.png",
    "task.png",
    "report.md",
    "report.html",
    "plots/",
    "pipeline.json",
)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    int8: bool = True
    backends: tuple[str, ...] | None = None  # None: every available backend
    formats: tuple[str, ...] | None = None  # None: export's defaults
    max_accuracy_drop: float | None = (
        None  # accuracy points an int8 artifact may lose (None: the task's gate)
    )
    task: str | None = None  # None: inferred (classify for the seed)
    task_params: tuple = ()
    dims: tuple = ()
    gates: tuple = ()  # ([precision.]metric, threshold) overrides of the task's gates
    atol: float = 1e-5
    # a sweep, so the batch-scaling plot shows a curve (and where each backend saturates)
    batch_sizes: tuple[int, ...] = (1, 8, 64, 256)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    # Shorter than `edgeport bench`'s defaults so the seed pipeline fits in about a minute on two cores.
    bench_min_seconds: float = 0.6
    bench_min_iters: int = 30
    bench_warmup_seconds: float = 0.2


@dataclass
class ModelInput:
    """A model the user brings (no training): the same options `edgeport export` takes."""

    model_ref: str
    weights: str | None = None
    random_init: bool = False
    model_args: dict = field(default_factory=dict)
    inputs: list | None = None
    input_shape: tuple | None = None
    outputs: list | None = None
    preprocessing: str | None = None
    overrides: dict = field(default_factory=dict)
    labels: list | None = None


def trains_first(model_ref: str | None, weights=None, random_init: bool = False) -> bool:
    """Whether the pipeline trains before it exports: no model given, or a seed model without weights
    (``--model mnist-cnn``); a model the user brings with weights (or ``--random-init``) is exported as is."""
    from .sources.models import get_spec, kind_of

    if not model_ref:
        if weights:
            raise ConfigError("--weights needs --model")
        return True
    if weights or random_init or kind_of(model_ref) != "registry":
        return False
    train = get_spec(model_ref).train
    return bool(train) and not train.get("recipe")  # the seed's MNIST models


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
        print(f"[edgeport] {msg}", file=sys.stderr, flush=True)


def _validate(config: PipelineConfig) -> None:
    from .runtime.registry import BACKENDS

    config.train.validate()
    config.calibration.validate()
    if config.max_accuracy_drop is not None and not 0 <= config.max_accuracy_drop <= 100:
        raise ConfigError(
            f"--max-accuracy-drop must be between 0 and 100 points, got {config.max_accuracy_drop}"
        )
    if not 0 < config.atol <= 1:
        raise ConfigError(f"--atol must be in (0, 1], got {config.atol}")
    unknown = [b for b in config.backends or () if b not in BACKENDS]
    if unknown:
        raise ConfigError(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")


def run_pipeline(
    *,
    out: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    config: PipelineConfig | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    model: ModelInput | None = None,
    data: str | None = None,
    calibration_data: str | None = None,
    eval_data: str | None = None,
    max_pixels: int | None = None,
    trust_model_code: bool = False,
) -> PipelineResult:
    """Run the stages into the run folder ``out``.

    ``trust_model_code``: the opt-in of :mod:`edgeport.trust`.  A run folder being resumed was
    not written by this process: its bundle is reused only if nothing in it runs code, or with
    the opt-in; otherwise it is exported again.
    """
    config = config or PipelineConfig()
    _validate(config)
    run = Path(out)
    result = PipelineResult(run_dir=run)
    t_all = time.perf_counter()
    _check_inputs(run, force, resume, model, data, calibration_data, eval_data, data_dir)
    resuming = _open_run(run, force, resume)
    mnist = None
    if model is None:  # the seed workload: train a registry model on MNIST
        mnist, info, module = _train_stage(run, config, data_dir, resuming, result, progress)
        data = data or "mnist"
    inputs = DataInput(data, calibration_data, eval_data, data_dir, max_pixels, mnist)
    bundle = _export_stage(run, config, model, inputs, resume, result, progress, trust_model_code)
    if bundle is None:
        _summary(run, result, config, t_all)
        return result
    source = _eval_source(bundle, inputs, config)
    if model is None:
        from .seed.grid import mnist_grid

        mnist_grid(module, mnist, run / "grid.png", labels=info.get("labels"))
    else:
        _sample_grid(bundle, source, run / "samples.png")
    _verify_stage(run, bundle, source, config, result, progress)
    _bench_stage(run, bundle, config, result, progress)
    _report_stage(run, result, config, t_all, progress)
    return result


def _check_inputs(run: Path, force, resume, model, data, calibration_data, eval_data, data_dir) -> None:
    """Every input exists, before the run folder is touched; none lies where it would be deleted: the
    bundle folder (exported again), or the whole run folder when --force starts it afresh."""
    from .export.api import input_files

    inputs = input_files(
        model_ref=model.model_ref if model else None,
        weights=model.weights if model else None,
        preprocessing=model.preprocessing if model else None,
        data=data,
        calibration_data=calibration_data,
        eval_data=eval_data,
        data_dir=data_dir,
    )
    fsutil.check_inputs(run / BUNDLE_DIR, inputs, replaced=True, what="bundle")
    resuming = resume and run.is_dir() and fsutil.folder_kind(run) in ("pipeline", "run")
    fsutil.check_inputs(run, inputs, replaced=force and not resuming, what="run folder")


def _open_run(run: Path, force: bool, resume: bool) -> bool:
    """True when resuming an existing run folder; otherwise a fresh, empty run folder is swapped in."""
    if resume and run.is_dir() and fsutil.folder_kind(run) in ("pipeline", "run"):
        return True
    fsutil.clean_leftovers(run)
    fsutil.prepare_target(run, force, "pipeline")
    with fsutil.staging_dir(run, "pipeline"):
        pass
    return False


def _train_stage(run: Path, config, data_dir, resuming: bool, result, progress):
    from . import checkpoint as ckpt
    from .sources.mnist import load_mnist
    from .sources.models import load_run

    t0 = time.perf_counter()
    mnist = load_mnist(data_dir)
    result.stages["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if resuming and (run / ckpt.TRAIN_FILE).is_file() and (run / ckpt.WEIGHTS_FILE).is_file():
        module, info = load_run(run)
        result.skipped.append("train")
        _log(f"train: reusing {run} (test accuracy {info['test_accuracy'] * 100:.2f}%)", progress)
    else:
        from .seed.train import fit, resolve

        _log(f"train: {config.train.model}, {resolve(config.train).epochs} epochs", progress)
        module, info = fit(config.train, mnist, progress=progress)
        info = ckpt.write_run_files(run, module.state_dict(), info)
        _log(
            f"train: test accuracy {info['test_accuracy'] * 100:.2f}% in {info['train_seconds']:.1f} s",
            progress,
        )
    result.stages["train"] = time.perf_counter() - t0
    return mnist, info, module


@dataclass(frozen=True)
class DataInput:
    """The data options of a pipeline run, as export and the eval split take them."""

    data: object = None
    calibration_data: object = None
    eval_data: object = None
    data_dir: object = None
    max_pixels: int | None = None
    mnist: object = None  # MNIST already loaded by the train stage

    def kwargs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _export_stage(run, config, model, inputs: DataInput, resume, result, progress, trust_model_code=False):
    from .export.api import export

    t0 = time.perf_counter()
    bundle = _reusable_bundle(run / BUNDLE_DIR, config, trust_model_code, progress) if resume else None
    if bundle is not None:
        result.skipped.append("export")
        result.stages["export"] = time.perf_counter() - t0
        return bundle
    _log("export: every format" + (" + int8 (calibrated)" if config.int8 else ""), progress)
    try:
        bundle = export(**_export_kwargs(run, config, model, inputs, progress, trust_model_code))
    except ParityError as exc:
        result.gates.append(f"export parity: {exc}")
        bundle = None
    for f in bundle.failures if bundle is not None else ():
        result.gates.append(f"export: {f['format']}/{f['precision']} failed at {f['stage']}: {f['reason']}")
    result.stages["export"] = time.perf_counter() - t0
    return bundle


def _reusable_bundle(bundle_dir: Path, config, trust_model_code: bool, progress: bool):
    """The run folder's bundle when --resume may reuse it (it loads, has int8 if asked, runs no untrusted
    code); None, with the reason logged, when it must be exported again."""
    from .bundle import load_bundle

    if not (bundle_dir / "manifest.json").is_file():
        return None
    trusted = trust_model_code or trust.code_is_trusted()
    try:
        bundle = load_bundle(bundle_dir)
    except EdgeportError as exc:
        _log(f"export: the bundle in the run folder cannot be reused ({exc}); exporting again", progress)
        return None
    code = runs_code_in(bundle)
    if config.int8 and not any(a.precision == "int8" for a in bundle.artifacts):
        _log("export: the bundle in the run folder has no int8 artifacts; exporting again", progress)
        return None
    if code and not trusted:
        _log(
            f"export: the bundle in the run folder holds {', '.join(code)}, which run code, and this "
            f"process did not write it; exporting again (pass {trust.OPT_IN} to reuse it)",
            progress,
        )
        return None
    bundle.trusted = trusted  # a folder on disk, like any other bundle: not "written here"
    _log(f"export: reusing {bundle_dir}", progress)
    return bundle


def _export_kwargs(
    run: Path, config, model, inputs: DataInput, progress: bool, trust_model_code: bool
) -> dict:
    """The pipeline's options as :func:`edgeport.export.api.export` takes them."""
    drop = None if config.max_accuracy_drop is None else config.max_accuracy_drop / 100
    kwargs = dict(
        out=run / BUNDLE_DIR,
        config=ExportConfig(
            int8=config.int8,
            atol=config.atol,
            rtol=config.atol,
            task=config.task,
            task_params=config.task_params,
            dims=config.dims,
            gates=config.gates,
            **({"formats": config.formats} if config.formats else {}),
        ),  # fmt: skip
        calibration=CalibrationConfig(**{**asdict(config.calibration), "max_accuracy_drop": drop}),
        force=True,
        progress=progress,
        formats_explicit=config.formats is not None,
        trust_model_code=trust_model_code,
        **inputs.kwargs(),
    )
    if model is None:
        return kwargs | {"run": run}
    return kwargs | dict(
        model_ref=model.model_ref, weights=model.weights, random_init=model.random_init,
        model_args=model.model_args, inputs=model.inputs, input_shape=model.input_shape,
        outputs=model.outputs, preprocessing=model.preprocessing,
        preprocessing_overrides=model.overrides, labels=model.labels,
    )  # fmt: skip


def runs_code_in(bundle) -> list[str]:
    """What in ``bundle`` runs code when loaded: its model reference, TorchScript artifacts."""
    from . import format_registry as formats

    out = [f"the model {bundle.manifest.model[:80]!r}"] if trust.runs_code(bundle.manifest.model) else []
    return out + [a.key for a in bundle.artifacts if formats.info(a.format).runs_code]


def _eval_source(bundle, inputs: DataInput, config):
    """The same eval split export used (the split is deterministic and recorded)."""
    from .export.api import data_plan

    m = bundle.manifest
    plan = data_plan(m.signature, bundle.preprocessing, m.random_init, config.calibration, **inputs.kwargs())
    return plan.eval


def _verify_stage(run, bundle, source, config, result, progress) -> None:
    from .runtime.registry import list_devices
    from .verification import verify

    fsutil.write_json(run / "devices.json", list_devices())
    t0 = time.perf_counter()
    _log(f"verify: every backend x precision x device on {len(source)} samples ({source.kind})", progress)
    report = verify(
        bundle,
        data=source,
        backends=list(config.backends) if config.backends else None,
        atol=config.atol,
        max_accuracy_drop=None if config.max_accuracy_drop is None else config.max_accuracy_drop / 100.0,
        gates=dict(config.gates),
        progress=progress,
    )
    fsutil.write_json(run / "verify.json", report)
    for row in report.get("rows", []):
        if not row.get("passed", False):
            name = f"{row.get('backend')}:{row.get('device')} {row.get('format')}/{row.get('precision')}"
            why = "; ".join(row.get("reasons") or []) or "failed"
            kind = "int8 accuracy" if row.get("precision") == "int8" else "parity"
            result.gates.append(f"{kind} gate: {name}: {why}")
    result.stages["verify"] = time.perf_counter() - t0


def _bench_stage(run, bundle, config, result, progress) -> None:
    from .runtime.benchmark import bench

    t0 = time.perf_counter()
    _log(f"bench: batch sizes {', '.join(map(str, config.batch_sizes))}", progress)
    report = bench(
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
    fsutil.write_json(run / "bench.json", report)
    result.stages["bench"] = time.perf_counter() - t0


def _report_stage(run, result, config, t_all, progress) -> None:
    from .report.writer import write_report

    t0 = time.perf_counter()
    _summary(run, result, config, t_all)
    md, html = write_report(run, force=True)
    result.stages["report"] = time.perf_counter() - t0
    _summary(run, result, config, t_all)
    _log(f"report: {md} and {html}", progress)


def _summary(run: Path, result: PipelineResult, config: PipelineConfig, t_all: float) -> None:
    fsutil.write_json(
        run / "pipeline.json",
        {
            "passed": result.passed,
            "gates": result.gates,
            "stages_seconds": {k: round(v, 3) for k, v in result.stages.items()},
            "skipped": result.skipped,
            "total_seconds": round(time.perf_counter() - t_all, 3),
            "config": asdict(config),
        },
    )


def _sample_grid(bundle, source, out: Path) -> None:
    """Sample images of the user's data with the reference model's predictions (the report shows it):
    a labelled grid for classifiers, the task's own pictures (boxes, masks) for the others."""
    from .report.plots import sample_grid, task_pictures

    if bundle.preprocessing is None:
        return
    images, labels = source.display_images(16)
    if not images:
        return
    task = bundle.task
    with bundle.runner("torch", "fp32", "cpu") as r:
        if task.label_kind == "class":
            pred, _ = r.predict(images)
            sample_grid(images, labels, pred, out, labels=bundle.labels)
            return
        pre = bundle.preprocessing
        images = images[:8]
        x = pre.apply(images)
        outputs = r.run({pre.input: x})
    rows = task.predict_rows(outputs, list(bundle.labels))
    spec = bundle.signature.input(pre.input)
    hw = tuple(x.shape[2:4] if spec.layout == "NCHW" else x.shape[1:3])
    pics = [
        task.picture(img, row, {k: v[i] for k, v in outputs.items()}, hw)
        for i, (img, row) in enumerate(zip(images, rows))
    ]
    task_pictures(
        [p for p in pics if p is not None],
        out.with_name("task.png"),
        title=f"{task.title}: PyTorch reference",
    )
