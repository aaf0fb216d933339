"""Runtime-stage commands: devices, verify, bench, predict.

``predict`` is the light path of an edge install: nothing here may import torch,
onnx or matplotlib at import time, and its handler imports only edgeport.predict.
"""

from __future__ import annotations

import argparse
import os
import sys

from .args import (
    _check_writable,
    _csv_list,
    _data_dir_arg,
    _Formatter,
    _int_list,
    _nonneg_float,
    _points,
    _positive_float,
    _positive_int,
)


def cmd_devices(args: argparse.Namespace) -> int:
    import json

    from ..runtime.registry import list_devices

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
    from ..runtime.verify import print_table, raise_if_failed, verify, write_json

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
    from ..config import BenchConfig
    from ..runtime.benchmark import bench, markdown_table, write_csv, write_json, write_markdown

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


def cmd_predict(args: argparse.Namespace) -> int:
    from ..predict import format_json, format_predictions, predict_files

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


def _selection_args(p: argparse.ArgumentParser) -> None:
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


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "devices",
        help="list every backend x device and whether it is usable here",
        formatter_class=_Formatter,
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser(
        "verify",
        help="check every artifact against PyTorch on the MNIST test set (exit 1 on any failure)",
        formatter_class=_Formatter,
    )
    _selection_args(p)
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
    _selection_args(p)
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 32, 256], help="comma list of batch sizes")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="threads per runner (default: 1 for batch <= 16, all cores above)",
    )
    p.add_argument("--warmup-seconds", type=_nonneg_float, default=0.5, help="untimed runs first, per row")
    p.add_argument("--min-iters", type=_positive_int, default=200, help="timed iterations per row, at least")
    p.add_argument("--min-seconds", type=_nonneg_float, default=2.0, help="timed seconds per row, at least")
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
    p.add_argument(
        "--backend",
        default="onnxruntime",
        choices=["onnxruntime", "openvino"],
        help="runtime to classify with",
    )
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="which artifact of the bundle"
    )
    p.add_argument("--device", default="cpu", help="device for the backend (cpu, cuda, CPU, GPU, AUTO ...)")
    p.add_argument("--top-k", type=_positive_int, default=3, help="how many probabilities to show")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predict)
