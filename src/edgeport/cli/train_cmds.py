"""Training-stage commands: summary, train, predict-grid."""

from __future__ import annotations

import argparse

from .args import _check_writable, _data_dir_arg, _Formatter, _nonneg_int, _positive_float, _positive_int


def cmd_summary(args: argparse.Namespace) -> int:
    from ..models import build_model, get_spec, summary_text

    shape = get_spec(args.model).input_shape if ":" not in args.model else (1, 28, 28)
    print(summary_text(build_model(args.model), tuple(shape)), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import TrainConfig
    from ..train import train

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

    from ..checkpoint import load_run
    from ..data import load_mnist
    from ..preprocessing import Preprocessing
    from ..report.grid import prediction_grid

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


def add_parsers(sub) -> None:
    from ..config import TrainConfig

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
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=TrainConfig.epochs,
        help="passes over the 55,000 training images",
    )
    p.add_argument("--batch-size", type=_positive_int, default=TrainConfig.batch_size, help="images per step")
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
    p.add_argument(
        "--seed", type=int, default=TrainConfig.seed, help="the same seed gives the same model and accuracy"
    )
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
