"""Training speed and accuracy against the tutorial's loop, measured in one run.

Prints: one epoch of the tutorial's loop (torchvision MNIST + ToTensor,
DataLoader(batch_size=32), Adam lr 1e-3, CrossEntropyLoss), edgeport's default
training (all epochs), the ratio of the two, the test accuracies, and the
fraction of the machine's measured fp32 GEMM rate that an epoch reaches.

    EDGEPORT_MNIST_ROOT=../shared/data/mnist .venv/bin/python benchmarks/train_speed.py
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import ToTensor

from edgeport.config import TrainConfig
from edgeport.seed.models import NeuralNetwork
from edgeport.seed.train import fit, resolve
from edgeport.sources.mnist import load_mnist, resolve_root

FLOP_PER_SAMPLE = 2 * (784 * 96 + 96 * 256 + 256 * 10)  # 204,800 forward


def sgemm_rate(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def tutorial_epoch(root: str) -> tuple[float, float]:
    """One epoch of the learning path's loop; returns (seconds, test accuracy)."""
    torch.manual_seed(0)
    train = torchvision.datasets.MNIST(root, train=True, download=False, transform=ToTensor())
    test = torchvision.datasets.MNIST(root, train=False, download=False, transform=ToTensor())
    model = NeuralNetwork()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    model.train()
    for x, y in DataLoader(train, batch_size=32, shuffle=True):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test, batch_size=1000):
            correct += (model(x).argmax(1) == y).sum().item()
    return seconds, correct / len(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    root = str(resolve_root(args.data_dir))
    peak = sgemm_rate()
    print(f"machine fp32 sgemm (2048^3, {torch.get_num_threads()} threads): {peak / 1e9:.1f} GFLOP/s")
    tut_s, tut_acc = tutorial_epoch(root)
    print(f"tutorial loop, 1 epoch: {tut_s:.2f} s, test accuracy {tut_acc * 100:.2f}%")
    t0 = time.perf_counter()
    data = load_mnist(root, download=False)
    load_s = time.perf_counter() - t0
    cfg = resolve(TrainConfig())  # the model's own defaults
    _model, info = fit(cfg, data, progress=False)
    total = load_s + info["train_seconds"]
    n = len(data.train_images)
    epoch_flop = 3 * FLOP_PER_SAMPLE * n
    rate = epoch_flop / info["seconds_per_epoch"]
    print(
        f"edgeport train (defaults: {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr}, shift {cfg.shift}): "
        f"{info['train_seconds']:.2f} s training + {load_s:.2f} s data loading = {total:.2f} s"
    )
    print(
        f"  test accuracy {info['test_accuracy'] * 100:.2f}%, val accuracy {info['val_accuracy'] * 100:.2f}%"
    )
    print(f"  ratio to one tutorial epoch: {total / tut_s:.2f}x (target <= 1.6x)")
    print(
        f"  per epoch {info['seconds_per_epoch']:.3f} s = {epoch_flop / 1e9:.1f} GFLOP at {rate / 1e9:.1f} GFLOP/s, "
        f"{rate / peak * 100:.0f}% of the measured sgemm rate"
    )
    ok = info["test_accuracy"] >= 0.98 and total / tut_s <= 1.6
    print(f"targets: accuracy >= 98.0% and <= 1.6x: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
