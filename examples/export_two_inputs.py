"""Bring a model with two inputs and two outputs: an image plus a metadata vector in, logits plus an
embedding out.  Parity is checked per output (the embedding, a raw output, by tolerance only).

    PYTHONPATH=examples python examples/export_two_inputs.py OUT

The same as:

    edgeport export --model models:image_and_vector --weights w.safetensors \
        --input image:1,3,32,32 --input vector:1,6:float32 --output logits:logits --output embedding:raw \
        --data npz:data.npz --out OUT
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

from edgeport.cli import main as edgeport  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="bundle folder to write")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-two-"))
    torch.manual_seed(0)
    save_file(models.image_and_vector().state_dict(), str(tmp / "w.safetensors"))
    rng = np.random.default_rng(0)
    np.savez(
        tmp / "data.npz",
        image=rng.standard_normal((400, 3, 32, 32)).astype(np.float32),
        vector=rng.standard_normal((400, 6)).astype(np.float32),
    )
    rc = edgeport(
        [
            "export",
            "--model",
            "models:image_and_vector",
            "--weights",
            str(tmp / "w.safetensors"),
            "--input",
            "image:1,3,32,32",
            "--input",
            "vector:1,6:float32",
            "--output",
            "logits:logits",
            "--output",
            "embedding:raw",
            "--data",
            f"npz:{tmp / 'data.npz'}",
            "--calibration-size",
            "100",
            "--out",
            args.out,
        ]
    )
    if rc == 0:
        from edgeport.bundle import load_bundle

        b = load_bundle(args.out)
        feeds = {"image": np.zeros((2, 3, 32, 32), np.float32), "vector": np.ones((2, 6), np.float32)}
        with b.runner("onnxruntime") as r:
            out = r.run(feeds)  # a dict in, a dict out
        print({k: v.shape for k, v in out.items()})
    return rc


if __name__ == "__main__":
    sys.exit(main())
