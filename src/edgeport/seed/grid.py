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
