"""End-to-end commands: pipeline (train -> export -> verify -> bench -> report) and report."""

from __future__ import annotations

import argparse
import sys

from .args import (
    PROG,
    _csv_list,
    _data_dir_arg,
    _Formatter,
    _int_list,
    _points,
    _positive_float,
    _positive_int,
    raise_config,
)


def cmd_pipeline(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..pipeline import PipelineConfig, run_pipeline
    from ..runtime.registry import BACKENDS

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


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.writer import write_report

    md, html = write_report(args.run)
    print(md)
    print(html)
    return 0


def add_parsers(sub) -> None:
    """Add ``pipeline``.  ``report`` comes from :func:`add_report_parser`, so it can stay last in --help."""
    from ..config import TrainConfig

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
    p.add_argument("--epochs", type=_positive_int, default=TrainConfig.epochs, help="training epochs")
    p.add_argument(
        "--seed",
        type=int,
        default=TrainConfig.seed,
        help="training seed (the same seed gives the same model)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", action="store_true", help="reuse stages whose outputs already exist in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_pipeline)


def add_report_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild RUN/report.md and RUN/report.html from the run's JSON files",
        formatter_class=_Formatter,
    )
    p.add_argument("run", help="run folder written by `edgeport pipeline`")
    p.set_defaults(func=cmd_report)
