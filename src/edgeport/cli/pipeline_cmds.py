"""End-to-end commands: pipeline ([train ->] export -> verify -> bench -> report) and report."""

from __future__ import annotations

import argparse

from ..errors import safe_text
from .args import (
    _Formatter,
    atol_float,
    batch_list,
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
)
from .output import print_result


def cmd_pipeline(args: argparse.Namespace) -> int:
    from ..config import CalibrationConfig, TrainConfig
    from ..pipeline import ModelInput, PipelineConfig, run_pipeline, trains_first
    from ..runtime.registry import BACKENDS
    from .export_cmds import _overrides, model_source_args, task_config

    unknown = [b for b in args.backends or [] if b not in BACKENDS]
    if unknown:  # before training, not after it
        raise_config(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    from .lm_cmds import cmd_pipeline_lm, lm_requested

    if lm_requested(args):  # a decoder-only language model (tiny-lm, hf:DIR): edgeport.lm_pipeline
        return cmd_pipeline_lm(args)
    model, train_model = None, args.model_ref or "mnist-mlp"
    if not trains_first(args.model_ref, args.weights, args.random_init):
        model, train_model = ModelInput(**model_source_args(args), overrides=_overrides(args)), "mnist-mlp"
    config = PipelineConfig(
        train=TrainConfig(model=train_model, epochs=args.epochs or None, seed=args.seed),
        int8=args.int8,
        backends=tuple(args.backends) if args.backends else None,
        formats=tuple(args.formats) if args.formats else None,
        max_accuracy_drop=args.max_accuracy_drop,
        **task_config(args),
        atol=args.atol,
        batch_sizes=tuple(args.batch_sizes),
        calibration=CalibrationConfig(size=args.calibration_size, method=args.calibration_method),
    )
    result = run_pipeline(
        out=args.out,
        data_dir=args.data_dir,
        config=config,
        force=args.force,
        resume=args.resume,
        progress=not args.quiet,
        model=model,
        data=args.data,
        calibration_data=args.calibration_data,
        eval_data=args.eval_data,
        max_pixels=args.max_pixels,
        trust_model_code=args.trust_model_code,
    )
    return print_result(result)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.writer import write_report

    md, html = write_report(args.run, force=args.force)
    print(safe_text(md))
    print(safe_text(html))
    return 0


def add_parsers(sub) -> None:
    """Add ``pipeline``.  ``report`` comes from :func:`add_report_parser`, so it can stay last in --help."""
    from ..config import CALIBRATION_METHODS, CalibrationConfig

    p = sub.add_parser(
        "pipeline",
        help="[train ->] export (fp32 + int8) -> verify -> bench -> report, with pass/fail gates",
        formatter_class=_Formatter,
        description="The main job. Without --model it trains the seed MNIST network first; with --model and "
        "--weights it starts at export, on your --data. Exits 1 with one line per failed gate (parity, int8 "
        "accuracy drop, task gates, a format that failed at export). Writes the run folder --out: train.json and model.safetensors (when it trains), bundle/, "
        "devices.json, verify.json, bench.json, grid.png or samples.png, report.md, report.html, plots/, "
        "pipeline.json. An existing --out is replaced only with --force, and only if edgeport made it.",
    )
    data_args(p)
    p.add_argument("--out", required=True, help="run folder to create (report.html lands here)")
    g = p.add_argument_group("your model (instead of training the seed network)")
    g.add_argument(
        "--model",
        dest="model_ref",
        default=None,
        help="registry name, pkg.mod:factory, torchvision:NAME, timm:NAME or a .pt2 (with --weights)",
    )
    g.add_argument("--weights", default=None, help=".safetensors or a state_dict .pt")
    g.add_argument("--random-init", action="store_true", help="random weights, for speed work only")
    g.add_argument(
        "--model-arg", action="append", default=None, metavar="NAME=VALUE", help="factory keyword argument"
    )
    g.add_argument(
        "--input", action="append", default=None, metavar="NAME:SHAPE[:DTYPE[:LAYOUT]]", help="a model input"
    )
    g.add_argument("--input-shape", type=shape_list, default=None, help="shorthand for one float32 input")
    g.add_argument(
        "--output",
        action="append",
        default=None,
        metavar="NAME[:KIND|ROLE]",
        help="an output's name, and its kind (probs, logits, raw) or role (boxes, mask_logits, ...)",
    )
    g.add_argument("--labels", default=None, help="class names: comma list or file")
    g.add_argument(
        "--preprocess", default=None, metavar="PRESET|FILE.json", help="mnist, imagenet or a JSON file"
    )
    g.add_argument("--mode", choices=["L", "RGB"], default=None, help="decode images as L or RGB")
    g.add_argument(
        "--resize", type=bounded_int(1, 16384), default=None, help="resize the shorter side to this"
    )
    g.add_argument("--crop", type=shape_list, default=None, help="centre crop H[,W]")
    g.add_argument("--scale", type=bounded_float(1e-9, 1e3), default=None, help="pixel scale (default 1/255)")
    g.add_argument("--mean", type=float_list, default=None, help="per-channel mean")
    g.add_argument("--std", type=float_list, default=None, help="per-channel std")
    p.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="add calibrated int8 artifacts"
    )
    p.add_argument("--formats", type=csv_list, default=None, help="comma list of formats (default: export's)")
    p.add_argument(
        "--backends", type=csv_list, default=None, help="comma list (default: every available backend)"
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=points_float,
        default=None,
        help="accuracy points an int8 artifact may lose, 0..100 (default: the task's gate, 0.5 for classify)",
    )
    task_args(p)
    p.add_argument("--atol", type=atol_float, default=1e-5, help="fp32 elementwise tolerance (rtol the same)")
    p.add_argument(
        "--batch-sizes", type=batch_list, default=[1, 8, 64, 256], help="batch sizes to benchmark (a sweep)"
    )
    p.add_argument(
        "--calibration-size",
        type=bounded_int(10, 100_000),
        default=CalibrationConfig.size,
        help="calibration samples",
    )
    p.add_argument(
        "--calibration-method", default="auto", choices=list(CALIBRATION_METHODS), help="int8 calibration"
    )
    p.add_argument(
        "--epochs",
        type=bounded_int(1, 1000),
        default=None,
        help="training epochs of the seed network (default: 20 for mnist-mlp, 8 for mnist-cnn)",
    )
    p.add_argument(
        "--seed", type=seed_int, default=0, help="training seed (the same seed gives the same model)"
    )
    from . import lm_cmds

    lm_cmds.export_args(
        p, pipeline=True
    )  # text generation: --task, --max-context, --steps, --prompt-lengths...
    p.add_argument("--force", action="store_true", help="replace --out if it is a run folder edgeport made")
    p.add_argument("--resume", action="store_true", help="reuse stages whose outputs already exist in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    from .args import trust_arg

    trust_arg(p)
    p.set_defaults(func=cmd_pipeline)


def add_report_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild RUN/report.md and RUN/report.html from the run's JSON files",
        formatter_class=_Formatter,
        description="Writes RUN/report.md, RUN/report.html and RUN/plots/*.png (each refused if it exists, unless "
        "--force).",
    )
    p.add_argument("run", help="run folder written by `edgeport pipeline`")
    p.add_argument("--force", action="store_true", help="overwrite the report files if they exist")
    p.set_defaults(func=cmd_report)
