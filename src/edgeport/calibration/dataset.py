"""The calibration set: N class-balanced training images, drawn once, used by every format.

Only the positions are stored; images are preprocessed one batch at a time as
the set is iterated, so memory does not grow with N.  The set is re-iterable
and sized, like ``nncf.Dataset``.  Its indices (positions in the 60,000-image
MNIST training file) and the sha256 of its raw pixels go into the manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from ..config import CalibrationConfig
from ..data import MnistData
from ..errors import ConfigError, DataError
from ..preprocessing import Preprocessing


def balanced_positions(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` positions into ``labels``, as class-balanced as the data allows.

    Each class is shuffled with ``seed``; positions are then taken round-robin
    over the classes, so every prefix (and so every batch) is balanced too.
    """
    labels = np.asarray(labels)
    if size > len(labels):
        raise DataError(
            f"calibration set of {size} images requested but the training split has only "
            f"{len(labels)}; pass a smaller --calibration-size"
        )
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    depth = max(len(p) for p in per_class)
    grid = np.full((depth, len(per_class)), -1, dtype=np.int64)
    for j, p in enumerate(per_class):
        grid[: len(p), j] = p
    order = grid.ravel()  # row r holds the r-th pick of every class
    return order[order >= 0][:size]


class CalibrationSet:
    """Re-iterable, sized stream of preprocessed float32 batches ``[b,1,H,W]``.

    ``len()`` is the number of images; iterating yields batches of
    ``batch_size`` (the last one may be smaller).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        positions: np.ndarray,
        file_indices: np.ndarray,
        preprocessing: Preprocessing,
        *,
        batch_size: int = 100,
        seed: int = 0,
    ) -> None:
        self._images = images  # the whole training split, referenced, not copied
        self._labels = labels
        self.positions = np.asarray(positions, dtype=np.int64)
        self.indices = np.asarray(file_indices, dtype=np.int64)[self.positions]
        self.preprocessing = preprocessing
        self.batch_size = int(batch_size)
        self.seed = seed

    @classmethod
    def from_data(cls, data: MnistData, config: CalibrationConfig | None = None) -> CalibrationSet:
        """Draw the set from ``data``'s training split (never validation or test)."""
        config = config or CalibrationConfig()
        config.validate()
        positions = balanced_positions(data.train_labels, config.size, config.seed)
        return cls(
            data.train_images,
            data.train_labels,
            positions,
            data.train_indices,
            data.preprocessing,
            batch_size=config.batch_size,
            seed=config.seed,
        )

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def num_batches(self) -> int:
        return -(-len(self) // self.batch_size)

    def raw_batches(self, batch_size: int | None = None) -> Iterator[np.ndarray]:
        """uint8 image batches ``[b,H,W]`` in calibration order."""
        bs = batch_size or self.batch_size
        if bs < 1:
            raise ConfigError(f"calibration batch size must be >= 1, got {bs}")
        for i in range(0, len(self), bs):
            yield self._images[self.positions[i : i + bs]]

    def batches(self, batch_size: int | None = None) -> Iterator[np.ndarray]:
        """Preprocessed float32 batches ``[b,1,H,W]``."""
        for raw in self.raw_batches(batch_size):
            yield self.preprocessing.apply(raw)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.batches()

    def labels(self) -> np.ndarray:
        return self._labels[self.positions]

    def class_counts(self) -> dict[str, int]:
        values, counts = np.unique(self.labels(), return_counts=True)
        return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}

    def sha256(self) -> str:
        """Hash of the raw uint8 pixels, in calibration order."""
        h = hashlib.sha256()
        for raw in self.raw_batches():
            h.update(np.ascontiguousarray(raw, dtype=np.uint8).tobytes())
        return h.hexdigest()

    def to_manifest(self, method: str) -> dict:
        return {
            "size": len(self),
            "method": method,
            "seed": self.seed,
            "split": "train",
            "indices": [int(i) for i in self.indices],
            "sha256": self.sha256(),
            "class_counts": self.class_counts(),
        }
