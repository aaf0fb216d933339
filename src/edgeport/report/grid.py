"""The 4x4 prediction grid of the tutorial's inference page."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def prediction_grid(
    images: np.ndarray,
    actual: np.ndarray,
    predicted: np.ndarray,
    out: str | os.PathLike,
    labels: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save a 4x4 grid of ``images`` titled "Actual: X / Predicted: Y" to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or [str(i) for i in range(10)]
    n = min(16, len(images))
    fig, axes = plt.subplots(4, 4, figsize=(8, 8.6))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(np.asarray(images[i]).reshape(28, 28), cmap="gray")
        ok = int(actual[i]) == int(predicted[i])
        ax.set_title(
            f"Actual: {labels[int(actual[i])]} / Predicted: {labels[int(predicted[i])]}",
            fontsize=9,
            color="black" if ok else "red",
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
