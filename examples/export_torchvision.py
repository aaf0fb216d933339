"""Bring a torchvision model: export MobileNetV3-small (10 classes) from its weights, on your photos.

    python examples/export_torchvision.py OUT [--photos DIR]

Saves random weights as a stand-in for yours (this machine has no internet for pretrained ones),
then runs the same as:

    edgeport export --model torchvision:mobilenet_v3_small --model-arg num_classes=10 \
        --weights w.safetensors --input-shape 1,3,224,224 --data imagefolder:DIR --int8 --out OUT

Without --photos it makes a small folder of synthetic photos (two classes) to calibrate and verify on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from edgeport.cli import main as edgeport


def synthetic_photos(root: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for k in range(n):
        cls = root / ("warm" if k % 2 else "cool")
        cls.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        base[..., 0 if k % 2 else 2] = 255
        Image.fromarray(base).resize((320, 240), Image.Resampling.BICUBIC).save(cls / f"{k}.jpg")
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="bundle folder to write")
    ap.add_argument("--photos", default=None, help="an image folder (one subfolder per class)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-tv-"))
    torch.manual_seed(0)
    weights = tmp / "w.safetensors"
    save_file(torchvision.models.mobilenet_v3_small(num_classes=10).state_dict(), str(weights))
    photos = Path(args.photos) if args.photos else synthetic_photos(tmp / "photos")
    return edgeport(
        [
            "export",
            "--model",
            "torchvision:mobilenet_v3_small",
            "--model-arg",
            "num_classes=10",
            "--weights",
            str(weights),
            "--input-shape",
            "1,3,224,224",
            "--data",
            f"imagefolder:{photos}",
            "--calibration-size",
            "20",
            "--labels",
            ",".join(f"class{i}" for i in range(10)),
            "--formats",
            "onnx,openvino",
            "--int8",
            "--out",
            args.out,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
