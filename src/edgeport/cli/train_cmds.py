"""Training-stage commands (the seed workload): summary, train, predict-grid."""

from __future__ import annotations

import argparse

from .args import (
    _Formatter,
    batch_int,
    bounded_float,
    bounded_int,
    check_outputs,
    data_dir_arg,
    raise_config,
    seed_int,
    threads_int,
    trust_arg,
    trusted,
)

SEED_MODELS = ("mnist-mlp", "mnist-cnn")  # trained on MNIST by edgeport.seed.train (defaults in their spec)


def cmd_summary(args: argparse.Namespace) -> int:
    from ..sources.models import build_model, get_spec, summary_text

    if args.model == "tiny-lm":  # the text-generation demo: a transformers Llama config
        from ..lm.tinylm import summary

        print(summary())
        return 0

    spec = get_spec(args.model)
    print(summary_text(build_model(args.model, trust_code=False), tuple(spec.input_shape)), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..seed.train import train

    if args.model == "tiny-lm":  # the text-generation demo (edgeport.lm.train)
        from .lm_cmds import cmd_train_lm

        return cmd_train_lm(args)
    if args.model not in SEED_MODELS:  # the task models: their recipe makes their data (edgeport.zoo)
        from ..zoo.train import trainable

        names = trainable()
        if args.model not in names:
            raise_config(
                f"edgeport train trains registry models ({', '.join([*SEED_MODELS, 'tiny-lm', *names])}); "
                "export your own trained model with edgeport export --model ... --weights ..."
            )
        return cmd_train_zoo(args)
    config = TrainConfig(
        model=args.model,
        epochs=args.epochs or None,  # None: the model spec's default
        batch_size=args.batch_size or None,
        lr=args.lr or None,
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


def cmd_train_zoo(args: argparse.Namespace) -> int:
    from ..zoo.train import config_for, train

    config = config_for(
        args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        samples=args.samples,
        seed=args.seed,
        threads=args.threads,
    )
    _model, info = train(config, args.out, force=args.force, progress=not args.quiet)
    from ..tasks import registry

    m = info["val_metrics"]
    shown = registry.task_class(info["task"]).summary_of(m, label_only=True)
    if "knn1_accuracy" in m:  # an embedding: do same-class samples come out as neighbours?
        shown = f"nearest-neighbour accuracy {m['knn1_accuracy'] * 100:.2f}%"
    print(
        f"{info['model']} ({info['task']}): {info['params']:,} params, {info['split']['train']} generated "
        f"samples, {info['epochs']} epochs in {info['train_seconds']:.1f} s, val {shown} -> {args.out}"
    )
    return 0


def cmd_predict_grid(args: argparse.Namespace) -> int:
    from ..seed.grid import mnist_grid
    from ..sources.mnist import load_mnist
    from ..sources.models import load_run

    check_outputs([args.out], args.force)
    model, info = load_run(args.run, trust_code=trusted(args))
    _path, correct = mnist_grid(
        model, load_mnist(args.data_dir), args.out, labels=info.get("labels"), seed=args.seed
    )
    print(f"{correct}/16 correct -> {args.out}")
    return 0


def add_parsers(sub) -> None:
    from ..config import TrainConfig

    models = ", ".join([*SEED_MODELS, "tiny-lm"])
    zoo = "shapes-detector, shapes-segmenter, text-tagger, kws-tones, tones-embedder"
    p = sub.add_parser(
        "summary", help="print the torchsummary table of a registry model", formatter_class=_Formatter
    )
    p.add_argument("--model", default="mnist-mlp", help=f"registry model: {models}")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "train",
        help="train a registry model (MNIST, or a task model on its generated set); writes RUN/model.safetensors "
        "and RUN/train.json",
        formatter_class=_Formatter,
        description="Writes the run folder RUN (model.safetensors, train.json) atomically; an existing RUN is "
        f"replaced only with --force, and only if edgeport made it. The seed models ({', '.join(SEED_MODELS)}) "
        "train on MNIST; tiny-lm (a small Llama-style decoder) on the standard library's docstrings. "
        f"The task models ({zoo}) generate their labelled synthetic set into RUN/data/ (train and val, "
        "in the layout their --data source reads: coco:, segfolder:, npz:, wavfolder:), train on it and "
        "record the validation metrics of their task; train.json's 'data' names the --data strings.",
    )
    data_dir_arg(p)
    p.add_argument("--out", required=True, help="run folder to create")
    p.add_argument("--model", default="mnist-mlp", help=f"registry model: {models}, {zoo}")
    p.add_argument(
        "--samples",
        type=bounded_int(10, 1_000_000),
        default=None,
        help="task models: training samples to generate (validation: a quarter) (default: the model's)",
    )
    p.add_argument(
        "--epochs",
        type=bounded_int(1, 1000),
        default=None,
        help="passes over the training set (default: 20 for mnist-mlp, 8 for mnist-cnn; task models: their own)",
    )
    p.add_argument(
        "--batch-size",
        type=batch_int,
        default=None,
        help="samples per step (default: 1024 for mnist-mlp, 256 for mnist-cnn; task models: their own)",
    )
    p.add_argument(
        "--lr",
        type=bounded_float(0.0, 10.0, lo_open=True),
        default=None,
        help="peak learning rate of the one-cycle schedule (default: 1e-2 for mnist-mlp, 4e-3 for mnist-cnn; task models: their own)",
    )
    p.add_argument(
        "--shift", type=bounded_int(0, 8), default=TrainConfig.shift, help="random translation, in pixels"
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=TrainConfig.seed,
        help="0..2^32-1; the same seed gives the same model and accuracy",
    )
    p.add_argument(
        "--threads", type=threads_int, default=None, help="torch threads, 1..256 (default: one per core)"
    )
    p.add_argument(
        "--steps",
        type=bounded_int(1, 1_000_000),
        default=None,
        help="tiny-lm only: optimizer steps (default 1200)",
    )
    p.add_argument("--force", action="store_true", help="replace RUN if it is a run folder edgeport made")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "predict-grid",
        help="save a 4x4 grid of MNIST test images titled 'Actual: X / Predicted: Y'",
        formatter_class=_Formatter,
        description="Writes one PNG file (--out); it is refused if it exists, unless --force.",
    )
    p.add_argument("--run", required=True, help="run folder written by `edgeport train`")
    data_dir_arg(p)
    p.add_argument("--out", default="grid.png", help="the PNG file to write")
    p.add_argument("--seed", type=seed_int, default=0, help="which test images to show")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    trust_arg(p)
    p.set_defaults(func=cmd_predict_grid)
