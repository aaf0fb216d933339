"""Bring a model that returns logits: the registry's LeNet-5 (``mnist-cnn``), trained here, exported
with int8.  Agreement is the argmax of the logits; ``predict`` turns them into probabilities.

    python examples/export_logits_model.py OUT --data-dir MNIST_ROOT

The same as:

    edgeport train --model mnist-cnn --out RUN --data-dir MNIST_ROOT
    edgeport export --run RUN --int8 --out OUT --data-dir MNIST_ROOT
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edgeport.cli import main as edgeport


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="bundle folder to write")
    ap.add_argument("--data-dir", default=None, help="MNIST root (default: $EDGEPORT_MNIST_ROOT)")
    ap.add_argument("--epochs", default="8")
    args = ap.parse_args(argv)
    run = Path(tempfile.mkdtemp(prefix="edgeport-cnn-")) / "run"
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    rc = edgeport(["train", "--model", "mnist-cnn", "--epochs", args.epochs, "--out", str(run), *data])
    return rc or edgeport(["export", "--run", str(run), "--int8", "--out", args.out, *data])


if __name__ == "__main__":
    sys.exit(main())
