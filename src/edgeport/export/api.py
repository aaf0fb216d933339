"""Public export API: :func:`export` (a model -> a verified bundle) and :func:`quantize`
(add int8 artifacts to an existing bundle).

An export runs in stages a reader can follow: resolve the model, describe
its tensors, plan its data, then - inside a staging folder beside the target -
write the reference checkpoint, every format (through the format registry),
check parity through the runtime's runners, quantize, store golden I/O and
write the manifest.  The staging folder is fsynced and swapped in with one
rename, so an interrupted export leaves the previous bundle intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch

from .. import format_registry as registry
from .. import fsutil
from ..bundle import RANDOM_WEIGHTS_WARNING, SCHEMA_VERSION, Bundle, Manifest, load_bundle
from ..bundle.writer import write_manifest
from ..config import CalibrationConfig, ExportConfig
from ..errors import ConfigError, safe_text
from ..formats import checkpoint
from ..host import device_info
from ..sources import models as msrc
from ..sources.data import plan_data
from ..specs import TensorSpec
from .context import ExportContext
from .signature import build_signature

DEFAULT_EXPORT = ExportConfig()
DEFAULT_CALIBRATION = CalibrationConfig()


# ---------------------------------------------------------------- stages before writing


def _formats(config: ExportConfig, explicit: bool) -> tuple[list[str], list[str]]:
    """(formats to write, notes on defaults that were skipped because their package is missing)."""
    out, notes = [], []
    for f in config.formats:
        fi = registry.info(f)
        if importlib.util.find_spec(fi.package) is None:
            if explicit:
                raise ConfigError(f"--formats {f} needs the {fi.package} package: {fi.install}")
            notes.append(f"{f} skipped: the {fi.package} package is not installed ({fi.install})")
            continue
        out.append(f)
    return out, notes


def _preprocessing(signature, source, preprocessing, overrides, data_specs=()):
    """The manifest's preprocessing: audio steps for ``wavfolder:`` data, an audio preset or JSON file;
    else image steps for the first image input (None for models without one)."""
    from .. import audio
    from .. import preprocessing as pp

    if audio.wanted(preprocessing, data_specs):
        if overrides:
            raise ConfigError(
                f"--{next(iter(overrides))} is an image option; audio steps come from --preprocess kws or a JSON file"
            )
        return audio.build(signature, preprocessing)
    images = signature.image_inputs
    if not images:
        if preprocessing or overrides:
            raise ConfigError("preprocessing options need an image input (rank 4, NCHW or NHWC)")
        return None
    spec = images[0]
    if isinstance(preprocessing, pp.Preprocessing):
        pre = preprocessing
    elif preprocessing is None and not overrides and source.preprocessing:
        pre = _from_run(source.preprocessing, spec)
    else:
        preset = preprocessing or (source.spec.preset if source.spec else None)
        pre = pp.build(input_spec=spec, preset=preset, **(overrides or {}))
    problem = pre.mismatch(spec)
    if problem:
        raise ConfigError(f"preprocessing does not fit the model: {problem}")
    return pre


def _from_run(d: dict, spec):
    """A run folder's preprocessing: schema-2 steps, or edgeport 0.1's scale/mean/std."""
    from .. import preprocessing as pp

    if "steps" in d:
        return pp.Preprocessing(spec.name, tuple(d["steps"]), d.get("preset"))
    base = pp.from_preset("mnist", spec.name)
    steps = [dict(s) for s in base.steps]
    steps[1]["factor"] = float(d["scale"])
    steps[2] |= {"mean": [float(d["mean"])], "std": [float(d["std"])]}
    return pp.Preprocessing(spec.name, tuple(steps), "mnist")


def _with_ranges(signature, pre, calibration=None):
    """Each float input's value range: from the preprocessing for images, else observed on real calibration data."""
    from ..sources.data import first_batch

    ins, sample = [], None
    for spec in signature.inputs:
        vr = spec.value_range
        if pre is not None and spec.name == pre.input and pre.value_range() is not None:
            vr = pre.value_range()
        elif spec.np_dtype.kind in "fiu" and calibration is not None and calibration.kind != "synthetic":
            if sample is None:
                sample, _ = first_batch(calibration, min(256, len(calibration)))
            lo, hi = float(np.min(sample[spec.name])), float(np.max(sample[spec.name]))
            vr = (lo, hi) if hi > lo else None  # integer inputs (token ids): the ids seen
        ins.append(dataclasses.replace(spec, value_range=vr) if vr is not None else spec)
    return dataclasses.replace(signature, inputs=tuple(ins))


def _labels(signature, source, plan, labels) -> list[str]:
    """The class names the bundle records, checked as the user's input (a class folder named with a
    newline is the data's fault, not the bundle's)."""
    found = _find_labels(signature, source, plan, labels)
    where = "--labels" if labels else "the data's class names (e.g. image folder names)"
    from ..bundle.manifest import _CONTROL

    if len(found) > 100_000:
        raise ConfigError(f"{where}: {len(found):,} classes, at most 100,000; check the data")
    for name in found:
        try:
            name.encode("utf-8")
            bad = ""
        except UnicodeEncodeError:
            bad = "is not valid text (a lone surrogate)"
        if len(name) > 200:
            bad = "is longer than 200 characters"
        elif _CONTROL.search(name):
            bad = "holds control characters (a newline, a tab...)"
        if bad:
            raise ConfigError(
                f"{where}: the class name '{safe_text(name, 60)}' {bad}; rename it, or pass --labels with "
                "one clean name per class"
            )
    return found


def _find_labels(signature, source, plan, labels) -> list[str]:
    primary = signature.primary_output
    if not primary.is_classifier:  # detection, segmentation...: the data's class names, where it has them
        return [str(x) for x in (labels or source.labels or plan.eval.classes or [])]
    n = int(primary.shape[-1])
    found = list(labels or source.labels or plan.eval.classes or [])
    if not found and source.spec is not None:
        found = [str(i) for i in range(source.spec.num_classes)]
    if not found:
        found = [str(i) for i in range(n)]
    if len(found) != n:
        raise ConfigError(
            f"{len(found)} labels ({', '.join(map(str, found[:4]))}...) but output {primary.name!r} has {n} classes; "
            "pass --labels with one name per class"
        )
    return [str(x) for x in found]


def input_files(
    *,
    run=None,
    model_ref=None,
    weights=None,
    preprocessing=None,
    data=None,
    calibration_data=None,
    eval_data=None,
    tokenizer=None,
    data_dir=None,
) -> dict:
    """``{flag: path}`` of every file or folder an export reads (for :func:`edgeport.fsutil.check_inputs`)."""
    from ..sources.open import spec_path

    pre = preprocessing if isinstance(preprocessing, (str, Path)) else None
    out = {
        "--run": run,
        "--model": model_ref
        if isinstance(model_ref, (str, Path)) and str(model_ref).endswith(".pt2")
        else None,
        "--weights": weights,
        "--preprocess": pre if pre is not None and (str(pre).endswith(".json") or "/" in str(pre)) else None,
        "--data": spec_path(data) if isinstance(data, str) else None,
        "--calibration-data": spec_path(calibration_data) if isinstance(calibration_data, str) else None,
        "--eval-data": spec_path(eval_data) if isinstance(eval_data, str) else None,
        "--tokenizer": tokenizer if isinstance(tokenizer, (str, Path)) else None,
    }
    if data_dir is not None and Path(data_dir).exists():  # MNIST is downloaded there when missing
        out["--data-dir"] = data_dir
    return out


def _default_data(pre, random_init: bool, data, calibration_data, eval_data):
    if any(d is not None for d in (data, calibration_data, eval_data)):
        return data
    if pre is not None and pre.preset == "mnist":
        return "mnist"
    if random_init:
        return "synthetic"
    raise ConfigError(
        "export needs data for parity and calibration: pass --data imagefolder:DIR, npz:FILE, coco:FILE.json, "
        "segfolder:DIR, wavfolder:DIR or mnist, or "
        "--calibration-data with --eval-data (--data synthetic uses random inputs: weak evidence)"
    )


def data_plan(signature, pre, random_init: bool, calibration, *, data, calibration_data, eval_data,
              data_dir, max_pixels, mnist):  # fmt: skip
    """The deterministic calibration / selection / eval splits of an export (the pipeline re-derives
    the same eval split from them)."""
    return plan_data(
        signature=signature,
        preprocessing=pre,
        data=_default_data(pre, random_init, data, calibration_data, eval_data),
        calibration_data=calibration_data,
        eval_data=eval_data,
        data_dir=data_dir,
        calibration_size=calibration.size,
        selection_size=calibration.selection_size,
        seed=calibration.seed,
        max_pixels=max_pixels,
        mnist=mnist,
    )


def reestimate_batchnorm(model: torch.nn.Module, calibration, names: list[str], batch: int) -> int:
    """Random weights: recompute every BatchNorm's running statistics on the calibration split.

    Without this a randomly initialised network's activations explode or
    vanish through the layers and every output looks the same.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
        m.train()
    with torch.no_grad():
        for feeds, _ in calibration.batches(batch):
            model(*[torch.from_numpy(feeds[n]) for n in names])
    model.eval()
    return len(norms)


# ---------------------------------------------------------------- export


@dataclasses.dataclass(frozen=True)
class ExportRequest:
    """Everything one export is asked to do: the arguments of :func:`export`, as one value."""

    run: object = None
    out: object = None
    config: ExportConfig = DEFAULT_EXPORT
    calibration: CalibrationConfig | None = None
    data: str | None = None
    calibration_data: str | None = None
    eval_data: str | None = None
    data_dir: object = None
    force: bool = False
    progress: bool = True
    model_ref: str | None = None
    weights: object = None
    random_init: bool = False
    model_args: dict | None = None
    inputs: object = None
    input_shape: object = None
    outputs: object = None
    preprocessing: object = None
    preprocessing_overrides: dict | None = None
    labels: list[str] | None = None
    int8_formats: object = None
    formats_explicit: bool = False
    max_pixels: int | None = None
    mnist: object = None
    tokenizer: object = None
    trust_model_code: bool = False
    lm: object = None
    source: object = None


def export(
    run=None,
    out=None,
    *,
    config: ExportConfig = DEFAULT_EXPORT,
    calibration: CalibrationConfig | None = None,
    data: str | None = None,
    calibration_data: str | None = None,
    eval_data: str | None = None,
    data_dir=None,
    force: bool = False,
    progress: bool = True,
    model_ref: str | None = None,
    weights=None,
    random_init: bool = False,
    model_args: dict | None = None,
    inputs=None,
    input_shape=None,
    outputs=None,
    preprocessing=None,
    preprocessing_overrides: dict | None = None,
    labels: list[str] | None = None,
    int8_formats=None,
    formats_explicit: bool = False,
    max_pixels: int | None = None,
    mnist=None,
    tokenizer=None,
    trust_model_code: bool = False,
    lm=None,
    source=None,
) -> Bundle:
    """Export a run (or a model reference plus weights) to a verified bundle at ``out``; returns it loaded.

    ``source``: a model already resolved (the Python API, :func:`edgeport.export.public.export`, passes
    in-memory modules so); ``trust_model_code``: the opt-in of :mod:`edgeport.trust`; ``tokenizer``: a
    tokenizer.json kept so raw text can be fed.  A default format that fails is left out and recorded in
    the manifest's ``failures``; one asked for with ``formats_explicit`` fails the export.  A decoder-only
    language model goes to :func:`edgeport.lm.export.export_lm` with ``lm`` (an ``LMExportConfig``).
    """
    r = ExportRequest(**{k: v for k, v in locals().items()})
    from ..lm.source import is_lm_ref

    if is_lm_ref(r.model_ref, r.run):  # text generation: KV-cache export, weight-only int8/int4
        from ..lm.export import LMExportConfig, export_lm

        return export_lm(r.model_ref or str(r.run), r.out, config=r.lm or LMExportConfig(),
                         random_init=r.random_init, force=r.force, progress=r.progress)  # fmt: skip
    return _export(r)


def _export(r: ExportRequest) -> Bundle:
    t0 = time.perf_counter()
    r.config.validate()
    calibration = r.calibration or DEFAULT_CALIBRATION
    calibration.validate()
    if r.out is None:
        raise ConfigError("--out is required: the folder to write the bundle to")
    target = Path(r.out)
    specs = (r.data, r.calibration_data, r.eval_data)
    _check_paths(target, r.force, run=r.run, model_ref=r.model_ref, weights=r.weights, preprocessing=r.preprocessing,
                 data=r.data, calibration_data=r.calibration_data, eval_data=r.eval_data, tokenizer=r.tokenizer,
                 data_dir=r.data_dir)  # fmt: skip
    formats, notes = _formats(r.config, r.formats_explicit)
    int8 = _int8_formats(r.config, formats, r.int8_formats)
    timings: dict = {}
    with _timed(timings, "load model"):
        source = r.source or msrc.resolve(run=r.run, model_ref=r.model_ref, weights=r.weights,
                                          random_init=r.random_init, model_args=r.model_args,
                                          trust_code=r.trust_model_code)  # fmt: skip
    with _timed(timings, "signature"):
        signature, example, task = _signature_and_task(source, r.config, r.inputs, r.input_shape, r.outputs)
    with _timed(timings, "data plan"):
        pre = _preprocessing(signature, source, r.preprocessing, r.preprocessing_overrides, specs)
        text = _text_block(signature, r.tokenizer, source.module)
        signature = _with_ranges(signature, pre)  # the image input's range comes from its preprocessing
        plan = data_plan(signature, pre, source.random_init, calibration, data=r.data,
                         calibration_data=r.calibration_data, eval_data=r.eval_data, data_dir=r.data_dir,
                         max_pixels=r.max_pixels, mnist=r.mnist)  # fmt: skip
        signature = _with_ranges(signature, pre, plan.calibration)
        task = _remake_task(signature, task)
    labels = _labels(signature, source, plan, r.labels)
    warnings = _warnings(source, plan, notes, calibration, signature, r.progress)
    gates = {**calibration.gate_overrides(), **dict(r.config.gates)}
    with fsutil.staging_dir(target, "bundle") as staging:
        ctx = ExportContext(
            staging=staging, model=source.module, signature=signature, example=example, config=r.config,
            calibration=calibration, labels=labels, preprocessing=pre.to_manifest() if pre else None,
            progress=r.progress, model_ref=source.ref, model_args=source.args, random_init=source.random_init,
            task=task, gates=gates, timings=timings,
        )  # fmt: skip
        from ..runtime.verify import label_map

        ctx.label_map = label_map(ctx.staged_bundle(), plan.eval)
        manifest = _write_bundle(
            ctx, source, plan, formats, int8, warnings, r.formats_explicit, r.int8_formats, text
        )
        with ctx.stage("manifest"):
            written = write_manifest(staging, manifest.replace(timings=dict(ctx.timings)))
    return _loaded(target, written, t0, r.progress)


@contextlib.contextmanager
def _timed(timings: dict, name: str):
    t = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t, 3)


def _check_paths(target: Path, force: bool, **read) -> None:
    """What --out is first (an edgeport bundle, or nothing), then that it holds none of the inputs."""
    files = input_files(**read)
    fsutil.clean_leftovers(target)
    fsutil.prepare_target(target, force, "bundle")
    fsutil.check_inputs(target, files, replaced=force, what="bundle")


def _signature_and_task(source, config: ExportConfig, inputs, input_shape, outputs):
    """The model's signature (traced at the example), its example inputs and its task."""
    from ..tasks import registry as tasks

    signature, example, task_name = build_signature(
        source.module, source, inputs=inputs, input_shape=input_shape, outputs=outputs,
        dims=config.dims, task=config.task, max_batch=config.max_batch,
    )  # fmt: skip
    spec_params = dict(source.spec.task_params) if source.spec is not None else {}
    return signature, example, tasks.make(signature, task_name, spec_params | dict(config.task_params))


def _remake_task(signature, task):
    """The task again for the signature with its value ranges (same name and parameters)."""
    from ..tasks import registry as tasks

    return tasks.make(signature, task.name, task.params)


def _text_block(signature, tokenizer, model):
    if tokenizer is None:
        return None
    from ..text import text_block

    return text_block(signature, tokenizer, _embedding_rows(model))


def _warnings(source, plan, notes: list, calibration, signature, progress: bool) -> list[str]:
    """What the manifest and the summary warn about; random weights get their BatchNorm re-estimated."""
    warnings = list(notes)
    if source.random_init:
        warnings.insert(0, RANDOM_WEIGHTS_WARNING)
        n = reestimate_batchnorm(
            source.module, plan.calibration, signature.input_names, calibration.batch_size
        )
        if n:
            source.provenance |= {"batchnorm_reestimated": f"{n} BatchNorm layers on the calibration split"}
    if plan.eval.kind == "synthetic":
        warnings.append("random inputs: weak evidence (parity and golden I/O use synthetic data)")
    for w in warnings:
        _say(progress, w)
    return warnings


def _loaded(target: Path, written: bytes, t0: float, progress: bool) -> Bundle:
    """The bundle as written, loaded and verified; trusted only if it is the one this process wrote."""
    bundle = load_bundle(target)
    # This process wrote it (its TorchScript may load without the opt-in), unless another writer
    # swapped its own bundle in since: every file is hashed in the manifest, so the same manifest
    # bytes mean the same bundle.
    bundle.trusted = bundle.manifest_bytes == written
    failed = (
        f"; FAILED: {', '.join(f['format'] + '/' + f['precision'] for f in bundle.failures)}"
        if bundle.failures
        else ""
    )
    _say(
        progress,
        f"wrote {target} in {time.perf_counter() - t0:.1f} s ({', '.join(a.key for a in bundle.artifacts)}){failed}",
    )
    return bundle


def _int8_formats(config: ExportConfig, formats: list[str], chosen) -> list[str]:
    if not config.int8:
        if chosen:
            raise ConfigError("--int8-formats needs --int8")
        return []
    chosen = list(chosen or [f for f in formats if registry.info(f).int8])
    bad = [f for f in chosen if f not in formats]
    if bad:
        raise ConfigError(
            f"--int8-formats {', '.join(bad)}: not among the exported --formats {', '.join(formats)}"
        )
    return chosen


def _say(progress: bool, msg: str) -> None:
    if progress:
        import sys

        print(f"export: {msg}", file=sys.stderr, flush=True)


def _export_formats(ctx, formats: list[str], explicit: bool, failures: list) -> None:
    from ..errors import BackendUnavailableError, ExportError

    for fmt in formats:
        ctx.say(registry.info(fmt).title)
        try:
            with ctx.stage(f"export {fmt}"):
                ctx.artifacts += registry.module(fmt).export(ctx)
        except (ExportError, BackendUnavailableError) as exc:
            ctx.record_failure(failures, fmt, "fp32", "export", exc, explicit)


def _drop(ctx, art) -> None:
    ctx.artifacts.remove(art)
    for e in art.files():
        (ctx.staging / e.path).unlink(missing_ok=True)


def _parity_stage(ctx, plan, explicit: bool, failures: list) -> dict:
    from ..errors import ParityError
    from ..runtime.parity import Criteria
    from .parity import check_artifact, parity_block, parity_feeds, parity_groups

    ctx.say(
        "parity against PyTorch"
        + (f" (and at {', '.join(ctx.signature.free_dims)} min/mid/max)" if ctx.signature.free_dims else "")
    )
    t0 = time.perf_counter()
    with ctx.stage("parity reference (PyTorch)"):
        feeds, note, n_real = parity_feeds(ctx.signature, plan.eval, ctx.config.parity_samples)
        bundle = ctx.staged_bundle()
        groups = parity_groups(bundle, feeds, note, n_real)
    from ..runtime.parity import criteria_for

    fp32 = ctx.task.gates_for("fp32", ctx.gates)
    summary, failed_all = {}, []
    for art in [a for a in ctx.artifacts if a.format != "torch"]:
        key = f"{art.format}/{art.precision}"
        if art.precision == "fp32":
            crit = Criteria(ctx.config.atol, ctx.config.rtol, fp32)
        else:
            crit = criteria_for(ctx.task, art.precision, gates=ctx.gates)
        with ctx.stage(f"parity {key}"):
            summary[key], failed = check_artifact(
                bundle, art, groups, batch_sizes=ctx.config.parity_batch_sizes, criteria=crit, task=ctx.task,
                evidence=note.get("evidence"),
            )  # fmt: skip
        if failed:
            failed_all += failed
            listing = " | ".join(r.describe() for r in failed[:3])
            _drop(ctx, art)
            ctx.record_failure(failures, art.format, art.precision, "parity", ParityError(
                f"export parity against PyTorch failed for {key}: {listing}", failed), explicit)  # fmt: skip
    return parity_block(
        summary, groups, ctx.config.parity_batch_sizes, note, time.perf_counter() - t0, failed_all
    )


def _task_block(ctx) -> dict:
    return {
        "name": ctx.task.name,
        "params": dict(ctx.task.params),
        "gates": {p: ctx.task.gates_for(p, ctx.gates) for p in ("fp32", "fp16", "int8")},
    }


def _embedding_rows(model: torch.nn.Module) -> int | None:
    """The rows of the model's largest embedding table (what a tokenizer's ids must stay below), if any."""
    rows = [m.num_embeddings for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    return max(rows) if rows else None


def _write_text(ctx, text) -> dict | None:
    """Copy the tokenizer into the staging bundle; the manifest's ``text`` block with its file entry."""
    if text is None:
        return None
    from ..bundle.writer import file_entry, write_bytes
    from ..text import TOKENIZER_FILE

    block, data = text
    write_bytes(ctx.staging, TOKENIZER_FILE, data)
    return {"tokenizer": file_entry(ctx.staging, TOKENIZER_FILE).to_dict(), **block}


def _write_bundle(
    ctx: ExportContext, source, plan, formats, int8, warnings, explicit, int8_explicit, text=None
) -> Manifest:
    """Every file of the bundle, in stage order; returns the manifest to write."""
    from .golden import int8_metrics, write_golden

    failures: list[dict] = []
    text_block = _write_text(ctx, text)
    with ctx.stage("checkpoint"):
        ctx.artifacts += checkpoint.export(ctx, source)
    with ctx.stage("golden I/O"):
        golden, g_in, g_out = write_golden(ctx, plan.eval, ctx.config.golden_samples)
    k = min(16, len(next(iter(g_in.values()))))
    ctx.test_io = ({n: v[:k] for n, v in g_in.items()}, {n: v[:k] for n, v in g_out.items()})
    if "onnx" in formats:
        from ..formats.onnx import metadata_props

        ctx.metadata = metadata_props(ctx.preprocessing, ctx.labels)
    _export_formats(ctx, formats, explicit, failures)
    parity = _parity_stage(ctx, plan, explicit, failures)
    calib = layer = None
    int8 = [f for f in int8 if ctx.fp32(f) is not None]
    if int8:
        from .int8 import int8_stage

        ctx.say(f"int8 ({', '.join(int8)}), calibrated on {len(plan.calibration)} samples")
        new, calib, layer, _speed = int8_stage(
            ctx, plan, int8, explicit=bool(int8_explicit), failures=failures
        )
        with ctx.stage("golden I/O"):
            golden |= int8_metrics(ctx, new, g_in, g_out, golden)
    return Manifest(
        schema_version=SCHEMA_VERSION,
        model=source.ref,
        signature=ctx.signature,
        preprocessing=ctx.preprocessing,
        labels=tuple(ctx.labels),
        artifacts=tuple(ctx.artifacts),
        provenance=dict(source.provenance),
        environment=device_info(),
        parity=parity,
        model_args=dict(source.args),
        random_init=source.random_init,
        warnings=tuple(warnings),
        calibration=calib,
        layer_report=layer,
        golden=golden,
        data=plan.identity(),
        task=_task_block(ctx),
        failures=tuple(failures),
        text=text_block,
    )


# ---------------------------------------------------------------- quantize


def load_reference_model(bundle: Bundle) -> torch.nn.Module:
    """The bundle's reference model, rebuilt from its checkpoint (model code needs explicit trust)."""
    with bundle.runner("torch", "fp32", "cpu") as r:
        return r._module


__all__ = ["export", "load_reference_model", "reestimate_batchnorm", "TensorSpec"]
