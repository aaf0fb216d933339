"""The Python API end to end, without the CLI: an in-memory nn.Module is exported, verified on a
plain Python list of samples, and benchmarked, with the results used in code.

    python examples/python_api.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import edgeport
from edgeport import BenchConfig, Dataset, ExportConfig


class TinyNet(nn.Module):
    """A small CNN for 16x16 grey images with 4 classes (a bright quadrant says which)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(1))


def samples(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """(image [1, 16, 16] float32, class) pairs: class k lights up quadrant k."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(4))
        x = rng.normal(0.0, 0.3, (1, 16, 16)).astype(np.float32)
        r, c = divmod(k, 2)
        x[0, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] += 2.0
        out.append((x, k))
    return out


def train(model: nn.Module, data: list, steps: int = 60) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.from_numpy(np.stack([s for s, _ in data]))
    y = torch.tensor([k for _, k in data])
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()


def main(out: Path) -> int:
    torch.manual_seed(0)
    model = TinyNet()
    train(model, samples(512, seed=0))

    # export the module itself: calibration and parity on Python data, split by export
    bundle = edgeport.export(
        model,
        out / "bundle",
        input_shape=(1, 1, 16, 16),
        data=samples(700, seed=1),
        config=ExportConfig(formats=("onnx", "openvino"), int8=True),
        labels=["top-left", "top-right", "bottom-left", "bottom-right"],
        force=True,
        progress=False,
    )
    print("artifacts:", ", ".join(a.key for a in bundle.artifacts))

    # verify on held-out samples given as a Dataset (an iterable plus a transform)
    held_out = Dataset(samples(300, seed=2), transform=lambda s: ({"input": s[0]}, s[1]))
    report = edgeport.verify(bundle, data=held_out, progress=False)  # an edgeport.VerifyResult
    for row in report.rows:
        print(f"verify {row.key}: accuracy {row.metrics['accuracy']:.3f}, passed {row.passed}")
    if not report.passed:
        print("failed:", [r.reasons for r in report.failed()])
        return 1

    # benchmark, and pick the fastest artifact at batch 1 in code
    result = edgeport.bench(bundle, config=BenchConfig(batch_sizes=(1,), min_seconds=0.2), progress=False)
    fastest = result.fastest(batch_size=1)
    print(f"fastest at batch 1: {fastest.key}, {fastest.p50_us:.0f} us (p50)")
    (out / "bench.json").write_text(result.to_json())  # the same JSON as `edgeport bench --out`
    return 0


if __name__ == "__main__":
    raise SystemExit(
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="edgeport-api-")))
    )
