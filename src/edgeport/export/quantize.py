"""``edgeport quantize``: add calibrated int8 artifacts to an existing bundle, replacing it atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import format_registry as registry
from .. import fsutil
from ..bundle import SCHEMA_VERSION, Bundle, load_bundle
from ..bundle.writer import write_bytes, write_manifest
from ..config import CalibrationConfig
from ..errors import ConfigError
from ..host import device_info
from ..trust import OPT_IN, code_is_trusted
from .api import DEFAULT_CALIBRATION, DEFAULT_EXPORT, _task_block, data_plan, load_reference_model
from .context import ExportContext


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
    trust_model_code: bool = False,
) -> Bundle:
    """Add int8 artifacts to an existing bundle, replacing it atomically.  ``force`` redoes existing int8 ones.
    ``trust_model_code``: the bundle may be quantized from an artifact that runs code (TorchScript) although
    this process did not write it."""
    calibration.validate()
    target = Path(bundle_path)
    fsutil.clean_leftovers(target)
    old = load_bundle(target, trust_model_code=trust_model_code)
    formats = _formats_to_quantize(old, target, formats, force)
    m = old.manifest
    plan = data_plan(m.signature, old.preprocessing, m.random_init, calibration, data=data,
                     calibration_data=calibration_data, eval_data=eval_data, data_dir=data_dir,
                     max_pixels=max_pixels, mnist=mnist)  # fmt: skip
    from ..runtime.verify import gate_overrides

    gates = gate_overrides(old) | calibration.gate_overrides()
    keep = [a for a in old.artifacts if a.precision != "int8"]
    with fsutil.staging_dir(target, "bundle") as staging:
        _copy_kept(staging, old, keep)
        ctx = _context(staging, old, calibration, keep, gates, progress)
        written = _quantize_into(staging, ctx, old, plan, formats, gates)
    bundle = load_bundle(target)
    # Trusted as far as the bundle it started from was: the kept artifacts were copied, not made here.
    bundle.trusted = old.trusted and bundle.manifest_bytes == written
    return bundle


def _formats_to_quantize(old: Bundle, target: Path, formats, force: bool) -> list[str]:
    """The fp32 formats to quantize, after every reason not to (text generation, read-only, code, done)."""
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
    code = [f for f in formats if registry.info(f).runs_code]
    if code and not code_is_trusted(old):
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
    return formats


def _copy_kept(staging: Path, old: Bundle, keep: list) -> None:
    """Every file of the kept artifacts, the golden I/O and the tokenizer, verified as it is read."""
    m = old.manifest
    for a in keep:
        for e in a.files():
            write_bytes(staging, e.path, old.read_verified(a, e.path))
    for f in (m.golden or {}).get("files", []):
        write_bytes(staging, f["path"], old.read_file(f["path"], f["bytes"], f["sha256"]))
    e = m.text_entry()
    if e is not None:
        write_bytes(staging, e.path, old.read_file(e.path, e.bytes, e.sha256))


def _context(
    staging: Path, old: Bundle, calibration, keep: list, gates: dict, progress: bool
) -> ExportContext:
    from ..specs import random_feeds

    m = old.manifest
    ex = random_feeds(m.signature, 2)
    return ExportContext(
        staging=staging,
        model=load_reference_model(old),
        signature=m.signature,
        example=tuple(torch.from_numpy(ex[n]) for n in m.signature.input_names),
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


def _quantize_into(
    staging: Path, ctx: ExportContext, old: Bundle, plan, formats: list[str], gates: dict
) -> bytes:
    """The int8 stage on the staged copy, then its manifest; the manifest bytes written."""
    from ..runtime.verify import label_map
    from .int8 import int8_stage

    m = old.manifest
    ctx.label_map = label_map(old, plan.eval)
    failures = [f for f in m.failures if f["precision"] != "int8"]
    new, calib, layer, _ = int8_stage(ctx, plan, formats, explicit=False, failures=failures)
    golden = dict(m.golden) if m.golden else None
    if golden:
        from .golden import int8_metrics

        g = old.golden()
        golden |= int8_metrics(ctx, new, g[0], g[1], golden)
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
    return write_manifest(staging, manifest)


__all__ = ["quantize"]
