"""Your model, your photos: MNIST as an RGB image folder, a small RGB CNN trained on it, then
`edgeport pipeline` with ``imagefolder:`` as the only data source.

1. Writes MNIST as 64x64 RGB images (tinted digits on a tinted background), PNG and JPEG
   alternately, one subfolder per class: ``DIR/train`` from MNIST's training split and
   ``DIR/photos`` from its test split.
2. Trains ``examples/models.py:rgb_digits_cnn`` on DIR/train with torchvision's ImageFolder and
   transforms.v2 (the torch half), using the preprocessing steps the pipeline will record.
3. Runs ``edgeport pipeline --model models:rgb_digits_cnn --weights W --data imagefolder:DIR/photos``
   (calibration and eval split from that one folder by recorded indices) and checks the gates:
   every fp32 artifact agrees >= 99.9% top-1 with PyTorch; every int8 artifact loses <= 0.3 pt.

Usage: python benchmarks/rgb_pipeline.py --data-dir MNIST [--work DIR] [--per-class 600] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "steps": [
        {"op": "decode", "mode": "RGB"},
        {"op": "resize", "size": 64, "mode": "shorter", "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [64, 64]},
        {"op": "scale", "factor": 1 / 255},
        {"op": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        {"op": "layout", "layout": "NCHW"},
        {"op": "dtype", "dtype": "float32"},
    ]
}


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> int:
    from PIL import Image

    rng = np.random.default_rng(seed)
    counts = np.zeros(10, int)
    for img, lab in zip(images, labels):
        if counts[lab] >= per_class:
            continue
        counts[lab] += 1
        fg, bg = rng.uniform(0.6, 1.0, 3), rng.uniform(0.0, 0.3, 3)
        a = (
            np.asarray(Image.fromarray(img).resize((64, 64), Image.Resampling.BILINEAR), np.float32)[
                ..., None
            ]
            / 255
        )
        rgb = (255 * (a * fg + (1 - a) * bg)).clip(0, 255).astype(np.uint8)
        d = root / str(lab)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(
            d / (f"{counts[lab]:05d}.png" if counts[lab] % 2 else f"{counts[lab]:05d}.jpg"),
            **({} if counts[lab] % 2 else {"quality": 90}),
        )
    return int(counts.sum())


def train(folder: Path, out: Path, epochs: int) -> float:
    import torch
    from safetensors.torch import save_file
    from torchvision import datasets

    sys.path.insert(0, str(ROOT / "examples"))
    import models

    from edgeport.preprocessing import Preprocessing
    from edgeport.sources.transforms import to_torchvision

    pre = Preprocessing("input", tuple(STEPS["steps"]))
    transform = to_torchvision(pre)
    ds = datasets.ImageFolder(str(folder), loader=lambda p: pre.decode_file(p), transform=transform)
    x = torch.from_numpy(np.stack([ds[i][0] for i in range(len(ds))]))
    y = torch.tensor(ds.targets)
    torch.manual_seed(0)
    model = models.rgb_digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=epochs * (-(-len(x) // 128)))
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        model.train()
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    save_file(model.state_dict(), str(out))
    return acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"), help="MNIST root")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--per-class", type=int, default=600, help="training images per class")
    ap.add_argument("--photos-per-class", type=int, default=200, help="pipeline images per class")
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args(argv)
    from edgeport.sources.mnist import load_mnist

    work = Path(args.work or tempfile.mkdtemp(prefix="edgeport-rgb-"))
    d = load_mnist(args.data_dir)
    t0 = time.perf_counter()
    n_train = write_folder(work / "train", d.train_images, d.train_labels, args.per_class, 1)
    n_photos = write_folder(work / "photos", d.test_images, d.test_labels, args.photos_per_class, 2)
    print(
        f"wrote {n_train} training and {n_photos} pipeline images (64x64 RGB, PNG+JPEG) in "
        f"{time.perf_counter() - t0:.1f} s under {work}"
    )
    t0 = time.perf_counter()
    acc = train(work / "train", work / "rgb_cnn.safetensors", args.epochs)
    print(
        f"trained models:rgb_digits_cnn in {time.perf_counter() - t0:.1f} s (train accuracy {acc * 100:.2f}%)"
    )
    (work / "steps.json").write_text(json.dumps(STEPS))
    run = work / "run"
    cmd = [
        str(Path(sys.executable).parent / "edgeport"),
        "pipeline",
        "--model",
        "models:rgb_digits_cnn",
        "--weights",
        str(work / "rgb_cnn.safetensors"),
        "--input-shape",
        "1,3,64,64",
        "--preprocess",
        str(work / "steps.json"),
        "--data",
        f"imagefolder:{work / 'photos'}",
        "--max-accuracy-drop",
        "0.3",
        "--batch-sizes",
        "1,32",
        "--out",
        str(run),
        "--force",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "examples"))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print(f"edgeport pipeline: exit {p.returncode} in {time.perf_counter() - t0:.1f} s")
    if p.returncode or not (run / "verify.json").is_file():
        print(p.stderr[-3000:])
    if not (run / "verify.json").is_file():
        return 1
    v = json.loads((run / "verify.json").read_text())
    print(
        f"verified on {v['data']['n']} images ({v['data']['kind']}, {v['data']['evidence']}); "
        f"PyTorch accuracy {v['reference']['accuracy'] * 100:.2f}%"
    )
    ok = True
    for r in v["rows"]:
        if r["device"] != "cpu" or r["agreement"] is None:
            continue
        if r["precision"] == "fp32":
            good = r["agreement"] >= 0.999
            gate = f"agreement {r['agreement'] * 100:.2f}% (>= 99.9%)"
        else:
            good = r["accuracy_drop"] <= 0.003 + 1e-12
            gate = f"accuracy {r['accuracy'] * 100:.2f}%, drop {r['accuracy_drop'] * 100:.2f} pt (<= 0.3)"
        ok &= good
        print(
            f"  {r['format'] + '/' + r['precision']:<18} on {r['backend']:<12} {gate}  {'ok' if good else 'FAIL'}"
        )
    print(f"gates: {'all met' if ok and p.returncode == 0 else 'NOT MET'}; report: {run / 'report.html'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
