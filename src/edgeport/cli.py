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


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_list(text: str) -> list[int]:
    return [_positive_int(t) for t in _csv_list(text)]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


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

    model, info = load_run(args.run)
    data = load_mnist(args.data_dir)
    pre = Preprocessing.from_dict(info["preprocessing"])
    rng = __import__("numpy").random.default_rng(args.seed)
    idx = rng.choice(len(data.test_images), 16, replace=False)
    with torch.inference_mode():
        probs = model(torch.from_numpy(pre.apply(data.test_images[idx])))
    pred = probs.argmax(1).numpy()
    _check_writable(args.out, args.force)
    prediction_grid(data.test_images[idx], data.test_labels[idx], pred, args.out, labels=info.get("labels"))
    print(f"{int((pred == data.test_labels[idx]).sum())}/16 correct -> {args.out}")
    return 0


def _check_writable(path: str, force: bool) -> None:
    from .errors import ConfigError

    if os.path.exists(path) and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"folder {parent} does not exist; create it or choose another --out")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write to {parent} (permission denied); choose another --out")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .config import TrainConfig

    parser = argparse.ArgumentParser(
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
