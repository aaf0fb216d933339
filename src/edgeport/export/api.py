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
from ..trust import OPT_IN, code_is_trusted
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

    ``source``: a model already resolved (:func:`edgeport.sources.models.from_memory`); the Python API
    (:func:`edgeport.export.public.export`) passes in-memory modules this way.

    ``trust_model_code``: the opt-in of :mod:`edgeport.trust` (a ``.pt2`` is unpickled, a run folder's
    ``pkg.mod:factory`` imported, only with it; ``EDGEPORT_TRUST_MODEL_CODE=1`` says the same).

    ``tokenizer``: a tokenizer.json kept in the bundle so raw text can be fed (:mod:`edgeport.text`).

    A default format that fails (to export, or parity at some batch size or dim) is left out and
    recorded in the manifest's ``failures``; a format asked for with ``formats_explicit`` fails the
    whole export instead.

    A decoder-only language model (``hf:DIR``, ``tiny-lm``, a tiny-lm run) goes to
    :func:`edgeport.lm.export.export_lm` with ``lm`` (an ``LMExportConfig``) or its defaults.
    """
    from ..lm.source import is_lm_ref

    if is_lm_ref(model_ref, run):  # text generation: KV-cache export, weight-only int8/int4
        from ..lm.export import LMExportConfig, export_lm

        return export_lm(model_ref or str(run), out, config=lm or LMExportConfig(), random_init=random_init,
                         force=force, progress=progress)  # fmt: skip
    t0 = time.perf_counter()
    config.validate()
    calibration = calibration or DEFAULT_CALIBRATION
    calibration.validate()
    if out is None:
        raise ConfigError("--out is required: the folder to write the bundle to")
    target = Path(out)
    read = input_files(
        run=run,
        model_ref=model_ref,
        weights=weights,
        preprocessing=preprocessing,
        data=data,
        calibration_data=calibration_data,
        eval_data=eval_data,
        tokenizer=tokenizer,
        data_dir=data_dir,
    )
    fsutil.clean_leftovers(target)
    fsutil.prepare_target(target, force, "bundle")  # what --out is, first: then what lies inside it
    fsutil.check_inputs(target, read, replaced=force, what="bundle")
    formats, notes = _formats(config, formats_explicit)
    int8 = _int8_formats(config, formats, int8_formats)
    timings = {}
    t_stage = time.perf_counter()
    source = source or msrc.resolve(
        run=run,
        model_ref=model_ref,
        weights=weights,
        random_init=random_init,
        model_args=model_args,
        trust_code=trust_model_code,
    )
    model = source.module
    timings["load model"] = round(time.perf_counter() - t_stage, 3)
    t_stage = time.perf_counter()
    signature, example, task_name = build_signature(
        model,
        source,
        inputs=inputs,
        input_shape=input_shape,
        outputs=outputs,
        dims=config.dims,
        task=config.task,
        max_batch=config.max_batch,
    )
    from ..tasks import registry as tasks

    spec_params = dict(source.spec.task_params) if source.spec is not None else {}
    task = tasks.make(signature, task_name, spec_params | dict(config.task_params))
    timings["signature"] = round(time.perf_counter() - t_stage, 3)
    t_stage = time.perf_counter()
    pre = _preprocessing(
        signature, source, preprocessing, preprocessing_overrides, (data, calibration_data, eval_data)
    )
    text = None
    if tokenizer is not None:
        from ..text import text_block

        text = text_block(signature, tokenizer, _embedding_rows(model))
    signature = _with_ranges(signature, pre)  # the image input's range comes from its preprocessing
    plan = data_plan(
        signature,
        pre,
        source.random_init,
        calibration,
        data=data,
        calibration_data=calibration_data,
        eval_data=eval_data,
        data_dir=data_dir,
        max_pixels=max_pixels,
        mnist=mnist,
    )
    signature = _with_ranges(signature, pre, plan.calibration)
    task = tasks.make(signature, task_name, task.params)
    timings["data plan"] = round(time.perf_counter() - t_stage, 3)
    labels = _labels(signature, source, plan, labels)
    warnings = list(notes)
    if source.random_init:
        warnings.insert(0, RANDOM_WEIGHTS_WARNING)
        n = reestimate_batchnorm(model, plan.calibration, signature.input_names, calibration.batch_size)
        if n:
            source.provenance |= {"batchnorm_reestimated": f"{n} BatchNorm layers on the calibration split"}
    if plan.eval.kind == "synthetic":
        warnings.append("random inputs: weak evidence (parity and golden I/O use synthetic data)")
    for w in warnings:
        _say(progress, w)
    from ..runtime.verify import label_map

    gates = {**calibration.gate_overrides(), **dict(config.gates)}
    with fsutil.staging_dir(target, "bundle") as staging:
        ctx = ExportContext(
            staging=staging,
            model=model,
            signature=signature,
            example=example,
            config=config,
            calibration=calibration,
            labels=labels,
            preprocessing=pre.to_manifest() if pre else None,
            progress=progress,
            model_ref=source.ref,
            model_args=source.args,
            random_init=source.random_init,
            task=task,
            gates=gates,
            timings=timings,
        )
        ctx.label_map = label_map(ctx.staged_bundle(), plan.eval)
        manifest = _write_bundle(
            ctx, source, plan, formats, int8, warnings, formats_explicit, int8_formats, text
        )
        with ctx.stage("manifest"):
            written = write_manifest(staging, manifest.replace(timings=dict(ctx.timings)))
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
    feeds, note = parity_feeds(ctx.signature, plan.eval, ctx.config.parity_samples)
    bundle = ctx.staged_bundle()
    groups = parity_groups(bundle, feeds, note)
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
            golden |= int8_metrics(ctx, new, g_in, g_out)
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


def quantize(
    bundle_path,
    *,
    calibration: CalibrationConfig = DEFAULT_CALIBRATION,
    data: str | None = None,
    calibration_data: str | None = None,
    eval_data: str | None = None,
    data_dir=None,
    formats=None,
    progress: bool = True,
    force: bool = False,
    max_pixels: int | None = None,
    mnist=None,
) -> Bundle:
    """Add int8 artifacts to an existing bundle, replacing it atomically.  ``force`` redoes existing int8 ones."""
    calibration.validate()
    target = Path(bundle_path)
    fsutil.clean_leftovers(target)
    old = load_bundle(target)
    m = old.manifest
    if m.generation:
        raise ConfigError(
            f"bundle {target} is a text-generation bundle: its int8/int4 weight-only artifacts are made at export "
            "(edgeport export --weight-only int8,int4), not calibrated by quantize"
        )
    if m.read_only:
        raise ConfigError(
            f"bundle {target} uses manifest schema {m.upgraded_from} and is read-only; re-export it"
        )
    have = [a.format for a in old.artifacts if a.precision == "fp32" and a.format != "torch"]
    formats = list(formats or [f for f in have if registry.info(f).int8])
    missing = [f for f in formats if f not in have]
    if missing:
        raise ConfigError(
            f"bundle {target} has no fp32 {', '.join(missing)} artifact to quantize; re-export with them"
        )
    if not code_is_trusted(old):
        code = [f for f in formats if registry.info(f).runs_code]
        if code:
            raise ConfigError(
                f"quantize loads the {', '.join(code)} fp32 artifact of bundle {target}, which runs code, and "
                f"this process did not write that bundle; pass {OPT_IN} if you trust where it came from, "
                "or --formats without it"
            )
    existing = [a for a in old.artifacts if a.precision == "int8"]
    if existing and not force:
        raise ConfigError(
            f"bundle {target} already has int8 artifacts ({', '.join(a.key for a in existing)}); pass --force to redo them"
        )
    model = load_reference_model(old)
    pre = old.preprocessing
    plan = data_plan(
        m.signature,
        pre,
        m.random_init,
        calibration,
        data=data,
        calibration_data=calibration_data,
        eval_data=eval_data,
        data_dir=data_dir,
        max_pixels=max_pixels,
        mnist=mnist,
    )
    from ..specs import random_feeds

    ex = random_feeds(m.signature, 2)
    example = tuple(torch.from_numpy(ex[n]) for n in m.signature.input_names)
    from ..runtime.verify import gate_overrides

    gates = gate_overrides(old) | calibration.gate_overrides()
    keep = [a for a in old.artifacts if a.precision != "int8"]
    with fsutil.staging_dir(target, "bundle") as staging:
        from ..bundle.writer import write_bytes

        for a in keep:
            for e in a.files():
                write_bytes(staging, e.path, old.read_verified(a, e.path))
        golden = dict(m.golden) if m.golden else None
        if golden:
            for f in golden["files"]:
                write_bytes(staging, f["path"], old.read_file(f["path"], f["bytes"], f["sha256"]))
        if m.text_entry() is not None:
            e = m.text_entry()
            write_bytes(staging, e.path, old.read_file(e.path, e.bytes, e.sha256))
        ctx = ExportContext(
            staging=staging,
            model=model,
            signature=m.signature,
            example=example,
            config=DEFAULT_EXPORT,
            calibration=calibration,
            labels=list(m.labels),
            preprocessing=m.preprocessing,
            progress=progress,
            model_ref=m.model,
            model_args=m.model_args,
            random_init=m.random_init,
            artifacts=list(keep),
            task=old.task,
            gates=gates,
        )
        from ..runtime.verify import label_map
        from .int8 import int8_stage

        ctx.label_map = label_map(old, plan.eval)
        failures = [f for f in m.failures if f["precision"] != "int8"]
        new, calib, layer, _ = int8_stage(ctx, plan, formats, explicit=False, failures=failures)
        if golden:
            from .golden import int8_metrics

            g = old.golden()
            golden |= int8_metrics(ctx, new, g[0], g[1])
        task = dict(m.task or _task_block(ctx))
        task["gates"] = dict(task.get("gates") or {}) | {"int8": ctx.task.gates_for("int8", gates)}
        manifest = m.replace(
            schema_version=SCHEMA_VERSION,
            artifacts=tuple(ctx.artifacts),
            calibration=calib,
            layer_report=layer,
            environment=device_info(),
            golden=golden,
            task=task,
            failures=tuple(failures),
        )
        written = write_manifest(staging, manifest)
    bundle = load_bundle(target)
    # Trusted as far as the bundle it started from was: the kept artifacts were copied, not made here.
    bundle.trusted = old.trusted and bundle.manifest_bytes == written
    return bundle


__all__ = ["export", "quantize", "load_reference_model", "reestimate_batchnorm", "TensorSpec"]
