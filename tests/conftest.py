"""Shared fixtures.

- ``synthetic_mnist``: a small MNIST-shaped data set written as real IDX files,
  so the torchvision loader itself is exercised.  Each class is a distinct
  stroke pattern plus noise, so a model can learn it in a few steps.
- ``mnist_root``: the real MNIST from ``$EDGEPORT_MNIST_ROOT``, else ``../shared/data/mnist`` beside
  the checkout (as ``make`` finds it); tests marked ``mnist`` skip with a reason when neither holds it.
- ``tiny_run``: a run folder trained briefly on the synthetic data.
- ``int8_bundle_path``: the real export of ``tiny_run``, every format in fp32
  and calibrated int8 (the runtime contract and thread tests run on it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # user_models.py, export_fixtures.py

from edgeport.sources.mnist import write_idx  # noqa: E402

SHARED_MNIST = TESTS.parent.parent / "shared" / "data" / "mnist"
if not os.environ.get("EDGEPORT_MNIST_ROOT") and (SHARED_MNIST / "MNIST" / "raw").is_dir():
    # plain `pytest` finds the shared copy the way `make test` does (and passes it to subprocesses)
    os.environ["EDGEPORT_MNIST_ROOT"] = str(SHARED_MNIST)


def make_synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.int32)
    for i, c in enumerate(labels):
        r0 = 2 + 2 * int(c)  # a horizontal bar whose row encodes the class
        images[i, r0 : r0 + 3, 4:24] += 200
        images[i, 4:24, 2 + 2 * int(c) : 4 + 2 * int(c)] += 120 if c % 2 else 0
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(scope="session")
def synthetic_mnist(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_mnist")
    x, y = make_synthetic(1200, seed=1)
    write_idx(root, x, y, train=True)
    xt, yt = make_synthetic(1000, seed=2)
    write_idx(root, xt, yt, train=False)
    return root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    env = os.environ.get("EDGEPORT_MNIST_ROOT")
    if not env:
        pytest.skip(
            f"EDGEPORT_MNIST_ROOT is not set and {SHARED_MNIST} holds no MNIST; point it at a folder holding MNIST/raw/"
        )
    root = Path(env)
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"EDGEPORT_MNIST_ROOT={env} holds no MNIST/raw/train-images-idx3-ubyte")
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, synthetic_mnist) -> Path:
    from edgeport.config import TrainConfig
    from edgeport.seed.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(TrainConfig(epochs=2, batch_size=64, lr=5e-3), data_dir=synthetic_mnist, out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def int8_bundle_path(tmp_path_factory, tiny_run, synthetic_mnist) -> Path:
    from edgeport.config import CalibrationConfig, ExportConfig
    from edgeport.export.api import export

    out = tmp_path_factory.mktemp("int8") / "bundle"
    export(
        run=tiny_run,
        out=out,
        config=ExportConfig(int8=True),
        calibration=CalibrationConfig(size=100, method="minmax"),
        data_dir=synthetic_mnist,
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def full_bundle(tmp_path_factory, tiny_run, synthetic_mnist) -> Path:
    """Every format plus the fp16 IR and the mobile file, exported once per session."""
    import export_fixtures as fx

    return fx.full_bundle(tmp_path_factory, tiny_run, synthetic_mnist)


@pytest.fixture(scope="session")
def synthetic_pipeline(tmp_path_factory, synthetic_mnist):
    """One real pipeline run (train, export, int8, verify, bench, report) on synthetic MNIST, with the
    default int8 gate: (run folder, PipelineResult).  Tests that change the folder copy it first."""
    from edgeport.config import TrainConfig
    from edgeport.pipeline import PipelineConfig, run_pipeline

    out = tmp_path_factory.mktemp("pipe") / "run"
    fast = dict(bench_min_seconds=0.05, bench_min_iters=5, bench_warmup_seconds=0.01)
    config = PipelineConfig(train=TrainConfig(epochs=3, batch_size=64), **fast)
    result = run_pipeline(out=out, data_dir=synthetic_mnist, config=config, progress=False)
    return out, result


@pytest.fixture
def bundle_copy(full_bundle, tmp_path) -> Path:
    """A private copy of ``full_bundle`` that a test may damage."""
    import export_fixtures as fx

    return fx.bundle_copy(full_bundle, tmp_path)


def write_rgb_folder(
    root: Path, images: np.ndarray, labels: np.ndarray, size: int = 32, per_class: int = 60
) -> Path:
    """MNIST-style digits as an RGB image folder (one subfolder per class), PNG and JPEG alternately."""
    from PIL import Image

    rng = np.random.default_rng(0)
    counts: dict[int, int] = {}
    for img, lab in zip(images, labels):
        lab = int(lab)
        if counts.get(lab, 0) >= per_class:
            continue
        counts[lab] = counts.get(lab, 0) + 1
        tint = rng.uniform(0.5, 1.0, size=3)
        rgb = (np.asarray(Image.fromarray(img).resize((size, size)), np.float32)[..., None] * tint).astype(
            np.uint8
        )
        folder = root / f"class_{lab}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{counts[lab]:03d}." + ("png" if counts[lab] % 2 else "jpg")
        Image.fromarray(rgb).save(folder / name)
    return root


@pytest.fixture(scope="session")
def rgb_folder(tmp_path_factory, synthetic_mnist) -> Path:
    from edgeport.sources.mnist import load_mnist

    d = load_mnist(synthetic_mnist, download=False)
    return write_rgb_folder(tmp_path_factory.mktemp("rgb") / "digits", d.test_images, d.test_labels)
