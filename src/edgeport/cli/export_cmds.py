"""Export-stage commands: export, quantize, inspect."""

from __future__ import annotations

import argparse

from ..errors import safe_text
from . import lm_cmds
from .args import (
    _Formatter,
    atol_float,
    bounded_float,
    bounded_int,
    csv_list,
    data_args,
    float_list,
    points_float,
    raise_config,
    seed_int,
    shape_list,
    task_args,
    trusted,
)
from .output import print_bundle, print_timings


def _calibration(args):
    from ..config import CalibrationConfig

    cfg = CalibrationConfig(
        size=args.calibration_size,
        method=args.calibration_method,
        seed=args.calibration_seed,
        max_accuracy_drop=None if args.max_accuracy_drop is None else args.max_accuracy_drop / 100.0,
    )
    cfg.validate()
    return cfg


def _overrides(args) -> dict:
    out = {}
    for key in ("mode", "resize", "scale"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    if args.crop is not None:
        out["crop"] = tuple(args.crop) if len(args.crop) == 2 else args.crop[0]
    if args.mean is not None:
        out["mean"] = args.mean
    if args.std is not None:
        out["std"] = args.std
    return out


def _labels(args):
    if not args.labels:
        return None
    from pathlib import Path

    from ..fsutil import check_inputs

    p = Path(args.labels)
    if p.is_file():
        out = Path(args.out)  # a labels file inside the folder --force replaces would be lost
        resume = getattr(args, "resume", False)
        check_inputs(out, {"--labels": p}, replaced=args.force and not resume, what="output folder")
        if hasattr(args, "resume"):  # pipeline: the run folder's bundle is exported again
            check_inputs(out / "bundle", {"--labels": p}, replaced=True, what="bundle")
        lines = [ln.strip() for ln in p.read_text(errors="replace").splitlines() if ln.strip()]
        return lines
    return [t.strip() for t in args.labels.split(",")]


def model_source_args(args) -> dict:
    """The model-source options that `export` and `pipeline` share, as keyword arguments
    (preprocessing overrides go in under the caller's own name)."""
    from ..sources.models import parse_model_args

    return {
        "model_ref": args.model_ref,
        "weights": args.weights,
        "random_init": args.random_init,
        "model_args": parse_model_args(args.model_arg),
        "inputs": args.input,
        "input_shape": tuple(args.input_shape) if args.input_shape else None,
        "outputs": args.output,
        "preprocessing": args.preprocess,
        "labels": _labels(args),
    }


def cmd_export(args: argparse.Namespace) -> int:
    from ..config import DEFAULT_FORMATS, ExportConfig
    from ..export.api import export
    from .lm_cmds import cmd_export_lm, lm_requested

    if lm_requested(args):  # a decoder-only language model: KV-cache export (edgeport.lm)
        return cmd_export_lm(args)
    if not args.run and not args.model_ref:
        raise_config("give --run RUN (a folder from `edgeport train`), or --model MODEL with --weights FILE")
    formats = tuple(args.formats) if args.formats else DEFAULT_FORMATS
    run_data_defaults(args)
    config = ExportConfig(
        formats=formats,
        opset=args.opset,
        fp16=args.fp16,
        int8=args.int8,
        mobile=args.mobile,
        atol=args.atol,
        rtol=args.atol,
        max_batch=args.max_batch,
        executorch_max_batch=args.executorch_max_batch,
        golden_samples=args.golden_samples,
        parity_samples=args.parity_samples,
        **task_config(args),
    )
    bundle = export(
        run=args.run,
        out=args.out,
        config=config,
        calibration=_calibration(args),
        data=args.data,
        calibration_data=args.calibration_data,
        eval_data=args.eval_data,
        data_dir=args.data_dir,
        force=args.force,
        progress=not args.quiet,
        **model_source_args(args),
        preprocessing_overrides=_overrides(args),
        int8_formats=args.int8_formats,
        formats_explicit=args.formats is not None,
        max_pixels=args.max_pixels,
        tokenizer=args.tokenizer,
        trust_model_code=args.trust_model_code,
    )
    print_bundle(bundle)
    if args.verbose:
        print_timings(bundle.manifest.timings)
    return PARTIAL_EXIT if bundle.failures else 0


def run_data_defaults(args) -> None:
    """A task model's run folder names its generated sets (train.json 'data'); with no data option
    given, export calibrates on its train set and judges on its val set."""
    if not args.run or args.data or args.calibration_data or args.eval_data:
        return
    from pathlib import Path

    from ..checkpoint import read_train_json
    from ..errors import BundleError

    run = Path(args.run)
    try:
        data = read_train_json(run).get("data")
    except (BundleError, OSError):
        return  # the run loader reports a missing or bad train.json in its own words
    if not isinstance(data, dict) or not {"train", "val"} <= data.keys():
        return
    specs = {}
    for split in ("train", "val"):
        kind, sep, rel = str(data[split]).partition(":")
        parts = Path(rel).parts
        if not sep or not rel or Path(rel).is_absolute() or ".." in parts:
            return  # only folders inside the run; anything else must be given explicitly
        specs[split] = f"{kind}:{run / rel}"
    args.calibration_data, args.eval_data = specs["train"], specs["val"]
    if not args.quiet:
        print(f"data from {safe_text(str(run))}/train.json: calibration {safe_text(specs['train'])}, "
              f"eval {safe_text(specs['val'])}")  # fmt: skip


# `export` wrote the bundle, but without a format that failed: the exit code says so.
PARTIAL_EXIT = 3


def task_config(args) -> dict:
    """The task options as ExportConfig fields."""
    from .args import gate_values, key_values

    return {
        "task": args.task,
        "task_params": tuple(key_values(args.task_param, "--task-param").items()),
        "dims": tuple(args.dim or ()),
        "gates": tuple(gate_values(args.gate).items()),
    }


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..export.quantize import quantize

    bundle = quantize(
        args.bundle,
        trust_model_code=trusted(args),
        calibration=_calibration(args),
        data=args.data,
        calibration_data=args.calibration_data,
        eval_data=args.eval_data,
        data_dir=args.data_dir,
        formats=args.formats,
        progress=not args.quiet,
        force=args.force,
        max_pixels=args.max_pixels,
    )
    print_bundle(bundle)
    return PARTIAL_EXIT if any(f["precision"] == "int8" for f in bundle.failures) else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..bundle.describe import describe

    print(describe(load_bundle(args.bundle)))
    return 0


def _calibration_args(p: argparse.ArgumentParser) -> None:
    from ..config import CALIBRATION_METHODS, CalibrationConfig

    g = p.add_argument_group("int8 calibration")
    g.add_argument(
        "--calibration-size",
        type=bounded_int(10, 100_000),
        default=CalibrationConfig.size,
        help="samples of the calibration split (class-balanced where labels exist)",
    )
    g.add_argument(
        "--calibration-method",
        default=CalibrationConfig.method,
        choices=list(CALIBRATION_METHODS),
        help="auto tries each candidate; the fastest within the accuracy gate ships",
    )
    g.add_argument("--calibration-seed", type=seed_int, default=0, help="which samples calibrate")
    g.add_argument(
        "--max-accuracy-drop",
        type=points_float,
        default=None,
        help="accuracy points an int8 candidate may lose to be within the gate, 0..100 "
        "(default: the task's gate, 0.5 points for classify; same as --gate int8.accuracy_drop=0.005)",
    )


def add_parsers(sub) -> None:
    from ..config import DEFAULT_FORMATS, FORMATS, ExportConfig

    p = sub.add_parser(
        "export",
        help="export a model to TorchScript, ONNX, OpenVINO IR and ExecuTorch (fp32, and int8 with --int8) in one bundle",
        formatter_class=_Formatter,
        description="Writes the bundle folder --out (manifest.json, every artifact, golden I/O) atomically, after "
        "checking every artifact against PyTorch on the eval data at batch sizes 1, 2, 7 and 64 and at every "
        "dynamic dim's min, middle and max, judged by the task's metrics. An existing --out is replaced only "
        "with --force, and only if it is an edgeport bundle. A default format that fails is left out of the "
        "bundle (named in the manifest, `inspect` and the summary) and the exit code is 3; a format named in "
        "--formats that fails stops the export (exit 1).",
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--run",
        default=None,
        help="run folder written by `edgeport train` (a task model's run brings its generated sets: "
        "with no data option, calibration on its train set and eval on its val set)",
    )
    g.add_argument(
        "--model",
        dest="model_ref",
        default=None,
        help="registry name (mnist-mlp, mnist-cnn), pkg.mod:factory, torchvision:NAME, timm:NAME, or a .pt2",
    )
    g.add_argument("--weights", default=None, help=".safetensors (or a state_dict .pt, loaded weights-only)")
    g.add_argument(
        "--random-init",
        action="store_true",
        help="export random weights, for speed work only: every output says 'random weights: not for accuracy'",
    )
    g.add_argument(
        "--model-arg",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="keyword argument for the model factory, e.g. num_classes=10 (repeatable)",
    )
    g.add_argument(
        "--input",
        action="append",
        default=None,
        metavar="NAME:SHAPE[:DTYPE[:LAYOUT]]",
        help="one model input, batch first, e.g. image:1,3,224,224, vec:1,16:float32 or ids:batch,seq:int64 "
        "with --dim seq=4..512 (or inline: ids:1,seq=4..512:int64); repeatable, in order",
    )
    g.add_argument(
        "--input-shape",
        type=shape_list,
        default=None,
        help="shorthand for one float32 input, e.g. 1,3,224,224",
    )
    g.add_argument(
        "--output",
        action="append",
        default=None,
        metavar="NAME[:KIND|ROLE]",
        help="name of each output, in order, with its kind (probs, logits, raw) and/or role (class_scores, "
        "boxes, scores, labels, mask_logits, embedding, token_logits, values, aux) (repeatable)",
    )
    g.add_argument(
        "--labels",
        default=None,
        help="class names: a comma list or a file with one per line "
        "(default: the data's class folders, else 0..N-1)",
    )
    p.add_argument("--out", required=True, help="the bundle folder to create")
    p.add_argument(
        "--formats",
        type=csv_list,
        default=None,
        help=f"comma list of {','.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)}; a format whose "
        "package is missing is skipped with a note)",
    )
    p.add_argument(
        "--opset", type=bounded_int(17, 23), default=ExportConfig.opset, help="ONNX opset (17..23)"
    )
    p.add_argument(
        "--fp16", action="store_true", help="also write an OpenVINO IR with fp16-compressed weights"
    )
    p.add_argument(
        "--mobile",
        action="store_true",
        help="also write a TorchScript lite-interpreter file (PyTorch Mobile)",
    )
    p.add_argument("--int8", action="store_true", help="add calibrated int8 versions of every format")
    p.add_argument(
        "--int8-formats",
        type=csv_list,
        default=None,
        help="quantize only these formats (default: all exported)",
    )
    p.add_argument(
        "--atol", type=atol_float, default=ExportConfig.atol, help="fp32 parity tolerance (rtol the same)"
    )
    p.add_argument(
        "--max-batch",
        type=bounded_int(1, 65536),
        default=ExportConfig.max_batch,
        help="the largest batch the manifest allows",
    )
    p.add_argument(
        "--executorch-max-batch",
        type=bounded_int(1, 4096),
        default=ExportConfig.executorch_max_batch,
        help="the .pte plans memory for batches up to this",
    )
    p.add_argument(
        "--parity-samples",
        type=bounded_int(1, 100_000),
        default=ExportConfig.parity_samples,
        help="eval samples checked at export (plus edge inputs)",
    )
    p.add_argument(
        "--golden-samples",
        type=bounded_int(1, 4096),
        default=None,
        help="eval samples stored as golden I/O for selfcheck (plus edge cases) (default: 64, fewer when "
        "64 samples' inputs would pass 8 MiB, at least 16: a 224x224 RGB image is 588 KiB)",
    )
    g = p.add_argument_group("preprocessing (image, audio and text inputs)")
    g.add_argument(
        "--preprocess",
        default=None,
        metavar="PRESET|FILE.json",
        help="mnist, imagenet, kws (audio: 16 kHz, 1 s, 40 log-mels), or a JSON file of steps (default: mnist "
        "for 1x28x28, imagenet-style for RGB, kws fitted to the input for wavfolder data)",
    )
    g.add_argument(
        "--tokenizer",
        default=None,
        metavar="tokenizer.json",
        help="keep this tokenizer in the bundle so predict takes raw text (needs the tokenizers package); "
        "decoders: default the checkpoint folder's tokenizer.json",
    )
    g.add_argument("--mode", choices=["L", "RGB"], default=None, help="decode images as grayscale (L) or RGB")
    g.add_argument(
        "--resize", type=bounded_int(1, 16384), default=None, help="resize the shorter side to this"
    )
    g.add_argument("--crop", type=shape_list, default=None, metavar="H[,W]", help="centre crop to HxW")
    g.add_argument(
        "--scale", type=bounded_float(1e-9, 1e3), default=None, help="multiply pixels by this (default 1/255)"
    )
    g.add_argument("--mean", type=float_list, default=None, help="per-channel mean after scaling, comma list")
    g.add_argument("--std", type=float_list, default=None, help="per-channel std after scaling, comma list")
    task_args(p)
    data_args(p)
    _calibration_args(p)
    # --task text-generation, --max-context, --weight-only, --group-size, --tokenizer, --gate:
    lm_cmds.export_args(p)
    p.add_argument(
        "--force", action="store_true", help="replace --out if it is an edgeport bundle (atomically)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    from .args import trust_arg

    trust_arg(p)
    p.add_argument(
        "--verbose", action="store_true", help="print the seconds each export stage took (also in `inspect`)"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "quantize",
        help="add calibrated int8 artifacts to an existing bundle",
        formatter_class=_Formatter,
        description="Rewrites BUNDLE atomically with int8 artifacts added (existing ones are redone only with --force).",
    )
    p.add_argument("bundle", help="bundle folder written by `edgeport export`")
    p.add_argument(
        "--formats", type=csv_list, default=None, help="comma list (default: every fp32 format in the bundle)"
    )
    data_args(p)
    _calibration_args(p)
    p.add_argument("--force", action="store_true", help="redo int8 artifacts the bundle already has")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    from .args import trust_arg

    trust_arg(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "inspect",
        help="show a bundle's tensors, preprocessing, artifacts, calibration and int8 per-layer report",
        formatter_class=_Formatter,
    )
    p.add_argument("bundle", help="bundle folder")
    p.set_defaults(func=cmd_inspect)
