"""The 4x4 prediction grid of the tutorial's inference page ("Actual: X / Predicted: Y")."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def prediction_grid(
    images: np.ndarray,
    actual: np.ndarray | None,
    predicted: np.ndarray,
    out: str | os.PathLike,
    labels: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save a 4x4 grid of ``images`` titled "Actual: X / Predicted: Y" to ``out`` (written atomically)."""
    from ..report.plots import sample_grid

    return sample_grid(list(images), actual, predicted, Path(out), labels=labels, title=title)


def mnist_grid(model, data, out: str | os.PathLike, *, labels=None, seed: int = 0) -> tuple[Path, int]:
    """16 random MNIST test digits with ``model``'s predictions as a grid at ``out``; (path, correct)."""
    import torch

    idx = np.random.default_rng(seed).choice(len(data.test_images), 16, replace=False)
    with torch.inference_mode():
        pred = model(torch.from_numpy(data.preprocessing.apply(data.test_images[idx]))).argmax(1).numpy()
    path = prediction_grid(data.test_images[idx], data.test_labels[idx], pred, out, labels=labels)
    return path, int((pred == data.test_labels[idx]).sum())
