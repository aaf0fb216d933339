"""Bounded memory: `edgeport verify` over 10,000 224x224 images from an image folder.

Writes N JPEG images (224x224 RGB, 10 classes), exports a small CNN for 224x224 input (ONNX and
OpenVINO, fp32) calibrated on a separate folder, then runs ``edgeport verify B --data imagefolder:DIR``
in a child process and prints its peak RSS (target <= 2 GB).  The whole split would be
10,000 x 3 x 224 x 224 float32 = 6.0 GB if it were held in memory.

Usage: python benchmarks/verify_memory.py [--n 10000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_images(root: Path, n: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (10, 28, 28, 3), dtype=np.uint8)
    for i in range(n):
        c = i % 10
        d = root / f"c{c}"
        d.mkdir(parents=True, exist_ok=True)
        small = np.clip(base[c].astype(int) + rng.integers(-40, 40, (28, 28, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(small).resize((224, 224), Image.Resampling.BILINEAR).save(
            d / f"{i:05d}.jpg", quality=85
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args(argv)
    import torch
    from safetensors.torch import save_file

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "examples"))
    import models

    from edgeport.config import ExportConfig
    from edgeport.export.api import export

    tmp = Path(tempfile.mkdtemp(prefix="edgeport-mem-"))
    try:
        t0 = time.perf_counter()
        write_images(tmp / "eval", args.n, 0)
        write_images(tmp / "cal", 300, 1)
        print(f"wrote {args.n} + 300 JPEGs (224x224) in {time.perf_counter() - t0:.0f} s")
        torch.manual_seed(0)
        save_file(models.pooled_rgb_cnn().state_dict(), str(tmp / "w.safetensors"))
        export(
            model_ref="models:pooled_rgb_cnn",
            weights=tmp / "w.safetensors",
            input_shape=(1, 3, 224, 224),
            calibration_data=f"imagefolder:{tmp / 'cal'}",
            eval_data=f"imagefolder:{tmp / 'cal'}",
            out=tmp / "b",
            config=ExportConfig(formats=("onnx", "openvino")),
            progress=False,
        )
        cmd = [
            str(Path(sys.executable).parent / "edgeport"),
            "verify",
            str(tmp / "b"),
            "--data",
            f"imagefolder:{tmp / 'eval'}",
            "--devices",
            "cpu",
            "--quiet",
            "--trust-model-code",
        ]
        env = {"PYTHONPATH": str(root / "examples"), "PATH": "/usr/bin:/bin"}
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(p.stdout.strip().splitlines()[0] if p.stdout else p.stderr[-500:])
        print(
            f"edgeport verify: exit {p.returncode}, {wall:.0f} s, peak RSS {peak_mb:,.0f} MB "
            f"(target <= 2,048 MB; the split as float32 would be {args.n * 3 * 224 * 224 * 4 / 2**30:.1f} GiB)"
        )
        return 0 if p.returncode == 0 and peak_mb <= 2048 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
