"""Wall time of the main job and of a torch-free single-image prediction.

1. ``edgeport pipeline --data-dir D --out RUN --force`` with defaults, as a
   subprocess (what ``make run`` runs after set-up); target <= 3 minutes.
2. ``edgeport predict BUNDLE digit.png`` from process start to printed label,
   in a subprocess where importing torch is made to fail (so the light runtime
   is proven to suffice); target <= 1.5 s. Median of several runs.

    .venv/bin/python benchmarks/pipeline_time.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

BLOCK_TORCH = "import sys\nclass _B:\n    def find_spec(self, name, path=None, target=None):\n        if name == 'torch' or name.startswith('torch.'):\n            raise ImportError('torch is blocked for this benchmark')\nsys.meta_path.insert(0, _B())\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"))
    ap.add_argument("--runs", type=int, default=7, help="predict runs (median reported)")
    ap.add_argument("--keep", default=None, help="keep the run folder here")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("edgeport")
    work = Path(tempfile.mkdtemp(prefix="edgeport-bench-"))
    run = Path(args.keep) if args.keep else work / "run"
    cmd = [str(exe), "pipeline", "--out", str(run), "--force", "--quiet"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = json.loads((run / "pipeline.json").read_text()) if (run / "pipeline.json").is_file() else {}
    info = json.loads((run / "train.json").read_text()) if (run / "train.json").is_file() else {}
    print(f"edgeport pipeline (defaults): {wall:.1f} s wall, exit {proc.returncode} (target <= 180 s)")
    for stage, sec in summary.get("stages_seconds", {}).items():
        print(f"  {stage:<8} {sec:6.1f} s")
    if info:
        print(
            f"  test accuracy {info['test_accuracy'] * 100:.2f}%, gates {'all passed' if summary.get('passed') else summary.get('gates')}"
        )
    if proc.returncode:
        print(proc.stderr[-2000:])
        sys.exit(1)

    # a dark-on-light PNG of a real test digit, bigger than 28x28
    from edgeport.sources.mnist import load_mnist

    img = load_mnist(args.data_dir, download=False).test_images[0]
    png = work / "digit.png"
    Image.fromarray(255 - np.kron(img, np.ones((4, 4), np.uint8))).save(png)
    site = work / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = dict(os.environ, PYTHONPATH=str(site))
    times, out = [], ""
    for _ in range(args.runs):
        t0 = time.perf_counter()
        p = subprocess.run(
            [str(exe), "predict", str(run / "bundle"), str(png)], capture_output=True, text=True, env=env
        )
        times.append(time.perf_counter() - t0)
        out = p.stdout.strip() or p.stderr.strip()
        if p.returncode:
            print(f"predict failed: {out}")
            sys.exit(1)
    print(
        f"edgeport predict, 1 PNG, torch import blocked: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {args.runs} runs (target <= 1.5 s)"
    )
    print(f"  printed: {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
