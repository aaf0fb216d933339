"""Runtime-stage commands: devices, verify, bench, predict.

``predict`` is the light path of an edge install: nothing here may import torch,
onnx or matplotlib at import time, and its handler imports only edgeport.predict.
``verify`` and ``bench`` run on a remote device with ``--host``.
"""

from __future__ import annotations

import argparse
import sys

from ..bundle import load_bundle
from ..errors import safe_text
from . import lm_cmds
from .args import (
    _Formatter,
    atol_float,
    batch_list,
    bounded_int,
    check_outputs,
    data_args,
    gate_arg,
    gate_values,
    host_args,
    pixels_int,
    points_float,
    seconds_float,
    selection_args,
    threads_int,
    trusted,
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
        print(f"{name:<{width}}  {'usable' if r['usable'] else 'unavailable - ' + safe_text(r['reason'])}")
    return 0


def _selection(args) -> dict:
    return {"backends": args.backends, "precisions": args.precisions, "devices": args.devices}


def cmd_verify(args: argparse.Namespace) -> int:
    from ..fsutil import write_json
    from ..runtime.verify import print_table, raise_if_failed
    from ..verification import verify

    if args.out:
        check_outputs([args.out], args.force, args.bundle)
    if args.host is not None:
        from .args import remote_report_for

        report = remote_report_for(args, "verify")
    else:
        report = verify(
            load_bundle(args.bundle, trust_model_code=trusted(args)),
            data=args.data,
            data_dir=args.data_dir,
            atol=args.atol,
            max_accuracy_drop=None if args.max_accuracy_drop is None else args.max_accuracy_drop / 100.0,
            gates=gate_values(args.gate),
            limit=args.limit,
            progress=not args.quiet,
            max_pixels=args.max_pixels,
            **_selection(args),
        )
    print_table(report)
    if args.out:
        write_json(args.out, report)
        print(f"-> {safe_text(args.out)}")
    raise_if_failed(report)
    return 0


def bench_files(out: str) -> list[str]:
    import os

    stem = os.path.splitext(out)[0]
    return [out, stem + ".csv", stem + ".md"]


def cmd_bench(args: argparse.Namespace) -> int:
    from ..config import BenchConfig
    from ..fsutil import write_json
    from ..runtime.benchmark import (
        bench,
        markdown_table,
        noise_warning,
        raise_if_failed,
        write_csv,
        write_markdown,
    )

    if args.out:
        check_outputs(bench_files(args.out), args.force, args.bundle)
    config = BenchConfig(
        batch_sizes=tuple(args.batch_sizes),
        threads=args.threads,
        warmup_seconds=args.warmup_seconds,
        min_iters=args.min_iters,
        min_seconds=args.min_seconds,
    )
    if args.host is not None:
        from .args import remote_report_for

        report = remote_report_for(args, "bench")
    else:
        lm = lm_cmds.lm_bench_config(args, args.threads)  # used by text-generation bundles only
        bundle = load_bundle(args.bundle, trust_model_code=trusted(args))
        report = bench(bundle, config=config, progress=not args.quiet, lm=lm, **_selection(args))
    print(markdown_table(report))
    for w in report.get("warnings_bundle", []):
        print(f"WARNING: {safe_text(w)}", file=sys.stderr)
    noisy = noise_warning(report)
    if noisy:
        print(f"warning: {noisy}", file=sys.stderr)
    for s in report.get("skipped", []):
        print(f"skipped {s['backend']}:{s['device']}: {safe_text(s['reason'])}", file=sys.stderr)
    if args.out:
        js, csv_path, md = bench_files(args.out)
        write_json(js, report)
        write_csv(report, csv_path)
        write_markdown(report, md)
        print(f"-> {safe_text(js)}, {safe_text(csv_path)}, {safe_text(md)}")
    raise_if_failed(report)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..predict import format_json, format_predictions, predict_files

    bundle = load_bundle(
        args.bundle, trust_model_code=trusted(args)
    )  # loaded once: the answers and their rendering come from one bundle
    results, warnings = predict_files(
        bundle,
        args.images,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        top_k=args.top_k,
        max_pixels=args.max_pixels,
        with_warnings=True,
        out_dir=args.out_dir,
        force=args.force,
    )
    for w in warnings:
        print(f"WARNING: {safe_text(w)}", file=sys.stderr)
    if args.json:
        print(format_json(results))
    else:
        print(format_predictions(results, bundle.task))
    return 0


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
        help="check every artifact against PyTorch on your data, per output (exit 1 on any failure)",
        formatter_class=_Formatter,
        description="Streams the eval data once through the reference and every artifact, judged by the bundle's "
        "task: the elementwise tolerance (fp32/fp16) and the task's gates at each precision, as recorded at "
        "export (agreement and accuracy for classifiers; matched boxes and mAP, mIoU, cosine, token agreement "
        "and perplexity for the others). Dynamic dims are also run at their min, middle and max. With --out, "
        "writes that one JSON file (refused if it exists, unless --force).",
    )
    selection_args(p)
    data_args(p, split=False)
    p.add_argument(
        "--atol",
        type=atol_float,
        default=None,
        help="elementwise fp32 tolerance (default 1e-5, rtol the same)",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=points_float,
        default=None,
        help="accuracy points an int8/fp16 artifact may lose against PyTorch, 0..100 (default: the gate "
        "recorded at export, 0.5 points for classify int8)",
    )
    gate_arg(p)
    p.add_argument(
        "--limit", type=bounded_int(1, 100_000_000), default=None, help="verify on the first N samples only"
    )
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    lm_cmds.verify_args(p)  # --gate NAME=VALUE (text-generation bundles)
    host_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "bench",
        help="latency percentiles, throughput and memory for every backend with one timing method",
        formatter_class=_Formatter,
        description="With --out X.json, writes X.json, X.csv and X.md (each refused if it exists, unless --force).",
    )
    selection_args(p)
    p.add_argument(
        "--batch-sizes", type=batch_list, default=[1, 32, 256], help="comma list of batch sizes (1..65536)"
    )
    p.add_argument(
        "--threads",
        type=threads_int,
        default=None,
        help="threads per runner, 1..256 (default: 1 for batch <= 16, all cores above)",
    )
    p.add_argument(
        "--warmup-seconds", type=seconds_float, default=0.5, help="untimed runs first, per row (0..3600)"
    )
    p.add_argument(
        "--min-iters",
        type=bounded_int(1, 10_000_000),
        default=30,
        help="timed iterations per row, at least (1..10,000,000; with --min-seconds, whichever takes longer)",
    )
    p.add_argument(
        "--min-seconds", type=seconds_float, default=2.0, help="timed seconds per row, at least (0..3600)"
    )
    p.add_argument("--out", default=None, help="write X.json here, plus X.csv and X.md beside it")
    lm_cmds.bench_args(p)  # --prompt-lengths, --new-tokens, --repeats (text-generation bundles)
    host_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "predict",
        help="run a bundle on image files and show the task's answer (works without torch)",
        formatter_class=_Formatter,
        description="Each image is decoded (bounded by --max-pixels) and preprocessed exactly as the bundle's "
        "manifest says, a few at a time, then the bundle's task renders the answer: top-k classes, boxes "
        "(after the recorded score threshold and NMS, drawn with --out-dir), per-class pixel shares (masks "
        "overlaid with --out-dir), embedding norms. Label names come from the bundle.",
    )
    p.add_argument("bundle", help="bundle folder written by `edgeport export`")
    p.add_argument(
        "images", nargs="+", metavar="FILE", help="image files (PNG, JPEG, ...), or WAV files for audio steps"
    )
    p.add_argument(
        "--backend",
        default="onnxruntime",
        choices=["onnxruntime", "openvino", "executorch", "torchscript"],
        help="runtime to classify with",
    )
    p.add_argument(
        "--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="which artifact of the bundle"
    )
    p.add_argument("--device", default="cpu", help="device for the backend (cpu, cuda, gpu, auto ...)")
    p.add_argument("--top-k", type=bounded_int(1, 1000), default=3, help="how many classes to show")
    p.add_argument(
        "--max-pixels",
        type=pixels_int,
        default=None,
        help="refuse (or, for JPEG, downscale while decoding) larger images (default 25,000,000)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--out-dir",
        default=None,
        metavar="DIR",
        help="write a picture per file here (STEM.pred.png): boxes drawn for detectors, masks overlaid for "
        "segmenters",
    )
    p.add_argument("--force", action="store_true", help="overwrite pictures already in --out-dir")
    from .args import trust_arg

    trust_arg(p)
    p.set_defaults(func=cmd_predict)
