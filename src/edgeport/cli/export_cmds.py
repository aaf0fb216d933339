"""Export-stage commands: export, quantize, inspect."""

from __future__ import annotations

import argparse

from .args import _csv_list, _data_dir_arg, _Formatter, _int_list, _opset, _positive_int, raise_config


def cmd_export(args: argparse.Namespace) -> int:
    from ..config import CalibrationConfig, ExportConfig
    from ..export.api import export

    if not args.run and not args.model_ref:
        raise_config(
            "give --run RUN (a folder from `edgeport train`) or --model pkg.mod:factory --weights FILE"
        )
    config = ExportConfig(
        formats=tuple(args.formats), opset=args.opset, fp16=args.fp16, int8=args.int8, mobile=args.mobile
    )
    calibration = CalibrationConfig(size=args.calibration_size, method=args.calibration_method)
    calibration.validate()
    bundle = export(
        run=args.run,
        out=args.out,
        config=config,
        calibration=calibration if args.int8 else None,
        data_dir=args.data_dir,
        force=args.force,
        progress=not args.quiet,
        model_ref=args.model_ref,
        weights=args.weights,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
    )
    _print_bundle(bundle)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..config import CalibrationConfig
    from ..export.api import quantize

    calibration = CalibrationConfig(size=args.calibration_size, method=args.calibration_method)
    calibration.validate()
    bundle = quantize(
        args.bundle,
        calibration=calibration,
        data_dir=args.data_dir,
        formats=args.formats,
        progress=not args.quiet,
        force=args.force,
    )
    _print_bundle(bundle)
    return 0


def _print_bundle(bundle) -> None:
    print(f"bundle {bundle.path}:")
    for a in bundle.artifacts:
        print(f"  {a.key:<18} {a.file:<32} {a.bytes / 1024:8.1f} KiB  sha256 {a.sha256[:12]}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..calibration.layer_report import format_layer_report
    from ..export.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    m = bundle.manifest
    print(f"bundle {bundle.path}  (schema {m.schema_version}, model {m.model})")
    print(f"input  {m.input.get('name')} {m.input.get('shape')} {m.input.get('dtype')}")
    print(f"output {m.output.get('name')} {m.output.get('shape')} {m.output.get('dtype')}")
    print(f"preprocessing {m.preprocessing}  labels {','.join(m.labels)}")
    _print_bundle(bundle)
    if m.calibration:
        cal = m.calibration
        print(
            f"calibration: {cal.get('size')} training images, method {cal.get('method')}, sha256 {str(cal.get('sha256'))[:12]}"
        )
    print(format_layer_report(bundle))
    return 0


def _calibration_args(p: argparse.ArgumentParser) -> None:
    from ..config import CALIBRATION_METHODS, CalibrationConfig

    p.add_argument(
        "--calibration-size",
        type=_positive_int,
        default=CalibrationConfig.size,
        help="class-balanced training images used to calibrate int8",
    )
    p.add_argument(
        "--calibration-method",
        default=CalibrationConfig.method,
        choices=list(CALIBRATION_METHODS),
        help="auto tries each candidate and keeps the best on the validation split",
    )


def add_parsers(sub) -> None:
    from ..config import FORMATS, ExportConfig

    p = sub.add_parser(
        "export",
        help="export a trained run (or your own model) to TorchScript, ONNX and OpenVINO IR in one bundle",
        formatter_class=_Formatter,
        description="Writes BUNDLE/manifest.json plus artifacts atomically, after checking every artifact "
        "against PyTorch at batch sizes 1, 2, 7 and 64.",
    )
    p.add_argument("--run", default=None, help="run folder written by `edgeport train`")
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument(
        "--formats", type=_csv_list, default=list(FORMATS), help="comma list of " + ",".join(FORMATS)
    )
    p.add_argument("--opset", type=_opset, default=ExportConfig.opset, help="ONNX opset (>= 17)")
    p.add_argument(
        "--fp16", action="store_true", help="also write an OpenVINO IR with fp16-compressed weights"
    )
    p.add_argument("--mobile", action="store_true", help="also write a TorchScript lite-interpreter file")
    p.add_argument("--int8", action="store_true", help="add calibrated int8 versions of every format")
    _calibration_args(p)
    _data_dir_arg(p)
    p.add_argument("--model", dest="model_ref", default=None, help="your own model as package.module:factory")
    p.add_argument(
        "--weights",
        default=None,
        help="weights for --model: .safetensors (or a state_dict .pt, loaded weights-only)",
    )
    p.add_argument(
        "--input-shape", type=_int_list, default=None, help="input shape for --model, e.g. 1,1,28,28"
    )
    p.add_argument("--force", action="store_true", help="replace an existing bundle (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "quantize", help="add calibrated int8 artifacts to an existing bundle", formatter_class=_Formatter
    )
    p.add_argument("bundle", help="bundle folder written by `edgeport export`")
    _calibration_args(p)
    p.add_argument(
        "--formats",
        type=_csv_list,
        default=None,
        help="comma list (default: every fp32 format in the bundle)",
    )
    _data_dir_arg(p)
    p.add_argument("--force", action="store_true", help="redo int8 artifacts the bundle already has")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "inspect",
        help="show a bundle's manifest, artifacts and int8 per-layer error report",
        formatter_class=_Formatter,
    )
    p.add_argument("bundle", help="bundle folder")
    p.set_defaults(func=cmd_inspect)
