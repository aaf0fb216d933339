"""The ``edgeport`` command line.  The only module that knows argparse or exits.

Every subcommand is a thin wrapper over the Python API.  Errors an
:class:`~edgeport.errors.EdgeportError` describes become one line on stderr
and exit code 2 (usage/config) or 1 (failed checks); no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .errors import EdgeportError

PROG = "edgeport"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _opset(text: str) -> int:
    value = _positive_int(text)
    if value < 17:
        raise argparse.ArgumentTypeError(f"ONNX opset {value} is too old; choose 17 or newer")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _points(text: str) -> float:
    value = _nonneg_float(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected accuracy points between 0 and 100, got {text}")
    return value


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_list(text: str) -> list[int]:
    return [_positive_int(t) for t in _csv_list(text)]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``edgeport CMD: error: ...; see edgeport CMD --help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="MNIST root holding MNIST/raw/ (default: $EDGEPORT_MNIST_ROOT, else ~/.cache/edgeport/mnist, downloaded if missing)",
    )


# --------------------------------------------------------------------------- commands


def cmd_summary(args: argparse.Namespace) -> int:
    from .models import build_model, get_spec, summary_text

    shape = get_spec(args.model).input_shape if ":" not in args.model else (1, 28, 28)
    print(summary_text(build_model(args.model), tuple(shape)), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .train import train

    config = TrainConfig(
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        shift=args.shift,
        seed=args.seed,
        threads=args.threads,
    )
    _model, info = train(
        config, data_dir=args.data_dir, out=args.out, force=args.force, progress=not args.quiet
    )
    print(
        f"{info['model']}: {info['params']:,} params, {info['epochs']} epochs in {info['train_seconds']:.1f} s, "
        f"val {info['val_accuracy'] * 100:.2f}%, test {info['test_accuracy'] * 100:.2f}% -> {args.out}"
    )
    return 0


def cmd_predict_grid(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_run
    from .data import load_mnist
    from .preprocessing import Preprocessing
    from .report.grid import prediction_grid

    _check_writable(args.out, args.force)
    model, info = load_run(args.run)
    data = load_mnist(args.data_dir)
    pre = Preprocessing.from_dict(info["preprocessing"])
    rng = __import__("numpy").random.default_rng(args.seed)
    idx = rng.choice(len(data.test_images), 16, replace=False)
    with torch.inference_mode():
        probs = model(torch.from_numpy(pre.apply(data.test_images[idx])))
    pred = probs.argmax(1).numpy()
    prediction_grid(data.test_images[idx], data.test_labels[idx], pred, args.out, labels=info.get("labels"))
    print(f"{int((pred == data.test_labels[idx]).sum())}/16 correct -> {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .config import CalibrationConfig, ExportConfig
    from .export.api import export

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
    from .config import CalibrationConfig
    from .export.api import quantize

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


def raise_config(message: str) -> None:
    from .errors import ConfigError

    raise ConfigError(message)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .calibration.layer_report import format_layer_report
    from .export.bundle import load_bundle

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


def cmd_pipeline(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .pipeline import PipelineConfig, run_pipeline
    from .runtime.registry import BACKENDS

    unknown = [b for b in args.backends or [] if b not in BACKENDS]
    if unknown:  # before training, not after it
        raise_config(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")

    config = PipelineConfig(
        train=TrainConfig(epochs=args.epochs, seed=args.seed),
        int8=args.int8,
        backends=tuple(args.backends) if args.backends else None,
        max_accuracy_drop=args.max_accuracy_drop,
        atol=args.atol,
        batch_sizes=tuple(args.batch_sizes),
    )
    result = run_pipeline(
        out=args.out,
        data_dir=args.data_dir,
        config=config,
        force=args.force,
        resume=args.resume,
        progress=not args.quiet,
    )
    total = sum(result.stages.values())
    if result.passed:
        print(f"pipeline passed in {total:.0f} s: {result.run_dir}/report.html")
        return 0
    for line in result.gates:
        print(f"{PROG}: gate failed: {line}", file=sys.stderr)
    print(f"pipeline FAILED ({len(result.gates)} gate(s)); outputs kept in {result.run_dir}", file=sys.stderr)
    return 1


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import format_json, format_predictions, predict_files

    results = predict_files(
        args.bundle,
        args.images,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        top_k=args.top_k,
    )
    print(format_json(results) if args.json else format_predictions(results))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.writer import write_report

    md, html = write_report(args.run)
    print(md)
    print(html)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    import json

    from .runtime.registry import list_devices

    rows = list_devices()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(f"{r['backend']}:{r['device']}") for r in rows)
    for r in rows:
        name = f"{r['backend']}:{r['device']}"
        status = "usable" if r["usable"] else f"unavailable - {r['reason']}"
        print(f"{name:<{width}}  {status}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .runtime.verify import print_table, raise_if_failed, verify, write_json

    if args.out:
        _check_writable(args.out, args.force)
    report = verify(
        args.bundle,
        data_dir=args.data_dir,
        backends=args.backends,
        precisions=args.precisions,
        devices=args.devices,
        atol=args.atol,
        max_accuracy_drop=args.max_accuracy_drop / 100.0,
        progress=not args.quiet,
    )
    print_table(report)
    if args.out:
        write_json(report, args.out)
        print(f"-> {args.out}")
    raise_if_failed(report)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .config import BenchConfig
    from .runtime.benchmark import bench, markdown_table, write_csv, write_json, write_markdown

    if args.out:
        _check_writable(args.out, args.force)
    config = BenchConfig(
        batch_sizes=tuple(args.batch_sizes),
        threads=args.threads,
        warmup_seconds=args.warmup_seconds,
        min_iters=args.min_iters,
        min_seconds=args.min_seconds,
    )
    report = bench(
        args.bundle,
        backends=args.backends,
        precisions=args.precisions,
        devices=args.devices,
        config=config,
        progress=not args.quiet,
    )
    print(markdown_table(report))
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.out:
        stem = os.path.splitext(args.out)[0]
        write_json(report, args.out)
        write_csv(report, stem + ".csv")
        write_markdown(report, stem + ".md")
        print(f"-> {args.out}, {stem}.csv, {stem}.md")
    return 0


def _check_writable(path: str, force: bool) -> None:
    """Refuse an output file that exists (without --force) or cannot be written, before any work."""
    from .errors import ConfigError

    if os.path.isdir(path):
        raise ConfigError(f"--out {path} is a folder; give a file name")
    if os.path.exists(path) and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ConfigError(f"{parent} is a file, not a folder; choose another --out")
    if not os.path.isdir(parent):
        raise ConfigError(f"folder {parent} does not exist; create it or choose another --out")
    import tempfile

    try:  # os.access says yes to root everywhere, and knows nothing of read-only mounts or /proc
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to {parent} ({exc.strerror or exc}); choose another --out") from None


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .config import CALIBRATION_METHODS, FORMATS, CalibrationConfig, ExportConfig, TrainConfig

    parser = _Parser(
        prog=PROG,
        description="Take a PyTorch classifier from training to the edge: train, export to "
        "TorchScript/ONNX/OpenVINO (fp32 and int8), verify, benchmark and embed.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("summary", help="print the torchsummary table of a model", formatter_class=_Formatter)
    p.add_argument("--model", default="mnist-mlp", help="registered model name or package.module:factory")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "train",
        help="train a model on MNIST and write RUN/model.safetensors + RUN/train.json",
        formatter_class=_Formatter,
    )
    _data_dir_arg(p)
    p.add_argument("--out", required=True, help="run folder to create")
    p.add_argument("--model", default="mnist-mlp", help="registered model name")
    p.add_argument("--epochs", type=_positive_int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=_positive_int, default=TrainConfig.batch_size)
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=TrainConfig.lr,
        help="peak learning rate of the one-cycle schedule",
    )
    p.add_argument(
        "--shift",
        type=_nonneg_int,
        default=TrainConfig.shift,
        help="random translation augmentation, in pixels",
    )
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument(
        "--threads", type=_positive_int, default=None, help="torch threads (default: one per core)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "predict-grid",
        help="save a 4x4 grid of test images titled 'Actual: X / Predicted: Y'",
        formatter_class=_Formatter,
    )
    p.add_argument("--run", required=True, help="run folder written by `edgeport train`")
    _data_dir_arg(p)
    p.add_argument("--out", default="grid.png", help="PNG file to write")
    p.add_argument("--seed", type=int, default=0, help="which test images to show")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_predict_grid)

    def calibration_args(p: argparse.ArgumentParser) -> None:
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
    calibration_args(p)
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
    calibration_args(p)
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

    p = sub.add_parser(
        "pipeline",
        help="train -> export (fp32 + int8) -> verify -> bench -> report, with pass/fail gates",
        formatter_class=_Formatter,
        description="The main job. Exits 1 with one line per failed gate (parity, int8 accuracy drop); "
        "every stage's output stays in the run folder.",
    )
    _data_dir_arg(p)
    p.add_argument("--out", required=True, help="run folder to create (report.html lands here)")
    p.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="add calibrated int8 artifacts"
    )
    p.add_argument(
        "--backends", type=_csv_list, default=None, help="comma list (default: every available backend)"
    )
    p.add_argument(
        "--max-accuracy-drop", type=_points, default=0.2, help="accuracy points an int8 artifact may lose"
    )
    p.add_argument(
        "--atol", type=_positive_float, default=1e-5, help="fp32 elementwise tolerance (rtol the same)"
    )
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 256], help="batch sizes to benchmark")
    p.add_argument("--epochs", type=_positive_int, default=TrainConfig.epochs)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", action="store_true", help="reuse stages whose outputs already exist in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser(
        "devices",
        help="list every backend x device and whether it is usable here",
        formatter_class=_Formatter,
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)

    def selection(p: argparse.ArgumentParser) -> None:
        p.add_argument("bundle", help="bundle folder written by `edgeport export`")
        p.add_argument(
            "--backends",
            type=_csv_list,
            default=None,
            help="comma list: torch,torchscript,onnxruntime,openvino (default: all available)",
        )
        p.add_argument(
            "--precisions",
            type=_csv_list,
            default=None,
            help="comma list: fp32,fp16,int8 (default: all in the bundle)",
        )
        p.add_argument(
            "--devices",
            type=_csv_list,
            default=None,
            help="comma list, e.g. cpu,cuda,auto (default: every usable device)",
        )
        p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "verify",
        help="check every artifact against PyTorch on the MNIST test set (exit 1 on any failure)",
        formatter_class=_Formatter,
    )
    selection(p)
    _data_dir_arg(p)
    p.add_argument(
        "--atol",
        type=_positive_float,
        default=None,
        help="elementwise tolerance for fp32 (default 1e-5, rtol 1e-5)",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=_points,
        default=0.2,
        help="accuracy points an int8/fp16 artifact may lose against PyTorch",
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "bench",
        help="latency percentiles, throughput and memory for every backend with one timing method",
        formatter_class=_Formatter,
    )
    selection(p)
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 32, 256], help="comma list of batch sizes")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="threads per runner (default: 1 for batch <= 16, all cores above)",
    )
    p.add_argument("--warmup-seconds", type=_nonneg_float, default=0.5)
    p.add_argument("--min-iters", type=_positive_int, default=200)
    p.add_argument("--min-seconds", type=_nonneg_float, default=2.0)
    p.add_argument("--out", default=None, help="write JSON here (plus .csv and .md beside it)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "predict",
        help="classify PNG/JPEG files with a bundle (works without torch)",
        formatter_class=_Formatter,
        description="Images of any size are converted to grayscale, inverted if dark-on-light, "
        "fitted into 28x28 MNIST style and preprocessed as the manifest says.",
    )
    p.add_argument("bundle", help="bundle folder written by `edgeport export`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--device", default="cpu", help="device for the backend (cpu, cuda, CPU, GPU, AUTO ...)")
    p.add_argument("--top-k", type=_positive_int, default=3, help="how many probabilities to show")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "report",
        help="rebuild RUN/report.md and RUN/report.html from the run's JSON files",
        formatter_class=_Formatter,
    )
    p.add_argument("run", help="run folder written by `edgeport pipeline`")
    p.set_defaults(func=cmd_report)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except EdgeportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{PROG}: error: out of memory; use a smaller batch size", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(
            f"{PROG}: error: {exc.strerror or exc}{where}; check the path and free disk space",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # never a traceback unless asked for
        if os.environ.get("EDGEPORT_DEBUG"):
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(set EDGEPORT_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
