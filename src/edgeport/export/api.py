"""Public export API: :func:`export` (run or user model -> bundle) and :func:`quantize`
(add int8 artifacts to an existing bundle).  Both write into a staging folder
beside the target, fsync it and rename it into place, so an interrupted export
leaves the previous bundle intact and no half bundle under the target name.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..config import CalibrationConfig, ExportConfig
from ..errors import BundleError, ConfigError, DataError
from ..preprocessing import Preprocessing
from ..runtime.parity import Tolerance
from . import bundle as bnd
from .environment import environment
from .sources import MNIST_SAMPLE, parity_inputs, resolve_model, write_checkpoint
from .staging import OWNER_FILE, clean_leftovers, staging_dir  # noqa: F401  (OWNER_FILE for tests)

TORCHSCRIPT_FILE = "torchscript/model.pt"
TORCHSCRIPT_MOBILE_FILE = "torchscript/model.ptl"
ONNX_FILE = "onnx/model.onnx"
OPENVINO_FILE = "openvino/model.xml"
OPENVINO_FP16_FILE = "openvino/model.fp16.xml"
DEFAULT_EXPORT = ExportConfig()
DEFAULT_CALIBRATION = CalibrationConfig()
N_ONNX_TEST_IMAGES = 16


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"export: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- export


def export(
    run=None,
    out=None,
    *,
    config: ExportConfig = DEFAULT_EXPORT,
    calibration: CalibrationConfig | None = None,
    data_dir=None,
    force: bool = False,
    progress: bool = True,
    model_ref: str | None = None,
    weights=None,
    input_shape: tuple[int, ...] | None = None,
    data=None,
    preprocessing: Preprocessing | None = None,
    labels: list[str] | None = None,
) -> bnd.Bundle:
    """Export a run (or a user model) to a verified bundle at ``out``; returns the loaded bundle."""
    config.validate()
    calibration = calibration or CalibrationConfig()
    if config.int8:
        calibration.validate()
    if out is None:
        raise ConfigError("--out is required: the folder to write the bundle to")
    target = Path(out)
    clean_leftovers(target)
    ckpt.prepare_target(target, force, what="bundle")
    t0 = time.perf_counter()
    model, ref_name, shape, pre, run_labels, prov, src = resolve_model(run, model_ref, weights, input_shape)
    pre = preprocessing or pre
    if data is None and (shape == MNIST_SAMPLE or config.int8):
        from ..data import load_mnist

        data = load_mnist(data_dir)
    if config.int8 and shape != MNIST_SAMPLE:
        raise ConfigError(
            f"--int8 calibrates on MNIST images; the model's input shape {shape} is not 1,28,28"
        )
    x, n_real, note, value_range = parity_inputs(model, shape, pre, data, config.parity_images)
    from .parity import torch_reference

    ref = torch_reference(model, x)
    n_classes = int(ref.shape[1])
    labels = list(
        labels
        or run_labels
        or (data.labels if data is not None and n_classes == 10 else [str(i) for i in range(n_classes)])
    )
    if len(labels) != n_classes:
        raise ConfigError(f"{len(labels)} labels given but the model has {n_classes} outputs")
    example = torch.from_numpy(x[:2].copy())
    with staging_dir(target) as staging:
        arts, fp32_paths = [], {}
        arts.append(
            bnd.make_artifact(
                staging,
                "torch",
                "fp32",
                write_checkpoint(staging, model, ref_name, src),
                details={"format": "safetensors", "model": ref_name},
            )
        )
        prov.setdefault("checkpoint_sha256", arts[0].sha256)
        if "torchscript" in config.formats:
            from .torchscript import export_torchscript

            _say(progress, "torchscript")
            mobile = staging / TORCHSCRIPT_MOBILE_FILE if config.mobile else None
            details = export_torchscript(model, staging / TORCHSCRIPT_FILE, example, mobile_path=mobile)
            extra = [TORCHSCRIPT_MOBILE_FILE] if mobile else []
            arts.append(bnd.make_artifact(staging, "torchscript", "fp32", TORCHSCRIPT_FILE, extra, details))
            fp32_paths["torchscript"] = staging / TORCHSCRIPT_FILE
        if "onnx" in config.formats:
            from .onnx import export_onnx, metadata_props

            _say(progress, "onnx")
            k = min(N_ONNX_TEST_IMAGES, n_real)
            details, files = export_onnx(
                model,
                staging / ONNX_FILE,
                example,
                opset=config.opset,
                metadata=metadata_props(pre.to_dict(), labels),
                test_input=x[:k],
                test_output=ref[:k],
            )
            extra = [f.relative_to(staging).as_posix() for f in files]
            arts.append(bnd.make_artifact(staging, "onnx", "fp32", ONNX_FILE, extra, details))
            fp32_paths["onnx"] = staging / ONNX_FILE
        if "openvino" in config.formats:
            from .openvino import export_openvino

            _say(progress, "openvino")
            variants = [("fp32", OPENVINO_FILE, False)] + (
                [("fp16", OPENVINO_FP16_FILE, True)] if config.fp16 else []
            )
            for precision, rel, fp16 in variants:
                details = export_openvino(
                    model, staging / rel, example, onnx_path=fp32_paths.get("onnx"), fp16=fp16
                )
                arts.append(
                    bnd.make_artifact(
                        staging, "openvino", precision, rel, [rel.removesuffix(".xml") + ".bin"], details
                    )
                )
            fp32_paths["openvino"] = staging / OPENVINO_FILE
        _say(progress, "parity against PyTorch")
        from .parity import check_parity

        checked = [(a.format, a.precision, staging / a.file) for a in arts if a.format != "torch"]
        parity = check_parity(
            checked,
            x,
            ref,
            batch_sizes=config.parity_batch_sizes,
            fp32_tolerance=Tolerance(config.atol, config.rtol, 1.0, None),
            inputs_note=note,
        )
        calib = layer_report = None
        if config.int8:
            new, calib, layer_report = _int8(
                staging, model, fp32_paths, data, calibration, list(fp32_paths), progress
            )
            arts += new
        manifest = bnd.Manifest(
            schema_version=bnd.SCHEMA_VERSION,
            model=ref_name,
            input={
                "name": "input",
                "shape": ["batch", *shape],
                "dtype": "float32",
                "value_range": [float(v) for v in value_range],
            },
            output={"name": "probs", "shape": ["batch", n_classes], "dtype": "float32"},
            preprocessing=pre.to_dict(),
            labels=labels,
            artifacts=tuple(arts),
            provenance=prov,
            environment=environment(),
            parity=parity,
            calibration=calib,
            layer_report=layer_report,
        )
        bnd.write_manifest(staging, manifest)
    _say(progress, f"wrote {target} in {time.perf_counter() - t0:.1f} s ({', '.join(a.key for a in arts)})")
    return bnd.load_bundle(target)


def _int8(staging, model, fp32_paths, data, calibration, formats, progress):
    from .int8 import add_int8_artifacts

    _say(progress, f"int8 ({', '.join(formats)})")
    res = add_int8_artifacts(
        staging=staging,
        model=model,
        fp32=fp32_paths,
        data=data,
        config=calibration,
        formats=formats,
        progress=progress,
    )
    arts = [
        bnd.make_artifact(
            staging,
            a["format"],
            a.get("precision", "int8"),
            a["file"],
            a.get("extra_files", []),
            a.get("details", {}),
        )
        for a in res.artifacts
    ]
    return arts, res.calibration, res.layer_report


# ---------------------------------------------------------------- quantize


def quantize(
    bundle_path,
    *,
    calibration: CalibrationConfig = DEFAULT_CALIBRATION,
    data_dir=None,
    formats=None,
    progress: bool = True,
    force: bool = False,
    data=None,
) -> bnd.Bundle:
    """Add int8 artifacts to an existing bundle, replacing it atomically.  ``force`` redoes existing int8 ones."""
    calibration.validate()
    target = Path(bundle_path)
    clean_leftovers(target)
    old = bnd.load_bundle(target)
    have = {
        a.format
        for a in old.artifacts
        if a.precision == "fp32" and a.format in ("onnx", "openvino", "torchscript")
    }
    formats = list(formats or sorted(have))
    missing = [f for f in formats if f not in have]
    if missing:
        raise ConfigError(
            f"bundle {target} has no fp32 {', '.join(missing)} artifact to quantize; re-export with them"
        )
    existing = [a for a in old.artifacts if a.precision == "int8"]
    if existing and not force:
        raise ConfigError(
            f"bundle {target} already has int8 artifacts ({', '.join(a.key for a in existing)}); "
            "pass --force to redo them"
        )
    from safetensors.torch import load as load_safetensors

    from ..models import build_model, code_is_trusted

    model = build_model(old.manifest.model, trust_code=code_is_trusted())
    try:
        model.load_state_dict(load_safetensors(old.read_verified(old.artifact("torch"))), strict=True)
    except RuntimeError as exc:
        raise BundleError(
            f"bundle checkpoint does not fit {old.manifest.model}: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    if data is None:
        from ..data import load_mnist

        data = load_mnist(data_dir)
    if tuple(old.input_shape) != MNIST_SAMPLE:
        raise DataError(f"int8 calibration uses MNIST images; this bundle's input shape is {old.input_shape}")
    keep = [a for a in old.artifacts if a.precision != "int8"]
    with staging_dir(target) as staging:
        for a in keep:
            for e in a.files():
                dst = staging / e.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(old.read_verified(a, e.path))
        fp32 = {f: staging / old.artifact(f).file for f in formats}
        new, calib, layer_report = _int8(staging, model, fp32, data, calibration, formats, progress)
        m = old.manifest
        manifest = bnd.Manifest(
            **{
                **{k: getattr(m, k) for k in m.__dataclass_fields__},
                "artifacts": tuple(keep + new),
                "calibration": calib,
                "layer_report": layer_report,
                "environment": environment(),
            }
        )
        bnd.write_manifest(staging, manifest)
    return bnd.load_bundle(target)
