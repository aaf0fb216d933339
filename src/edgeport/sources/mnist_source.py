"""In-memory sources: MNIST's IDX splits, and decoded arrays a caller passes (``verify(data=(x, y))``)."""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import DataError
from .base import REAL_LABELLED, REAL_UNLABELLED, DataSource, balanced_positions


class MnistSource(DataSource):
    kind = "mnist"
    evidence = REAL_LABELLED
    label_kind = "class"

    def __init__(self, data, split: str, preprocessing, input_name: str, positions=None, role="") -> None:
        super().__init__(positions, role)
        self.data, self.split, self.pre, self.input_name = data, split, preprocessing, input_name
        self.images, self.labels_ = data.split(split)
        self.classes = list(data.labels)

    def _all(self) -> int:
        return len(self.images)

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        return {self.input_name: self.pre.apply(self.images[positions])}

    def raw(self, positions) -> np.ndarray:
        return self.images[self._pos()[positions]]

    def identity(self) -> dict:
        d = super().identity()
        pos = self._pos()
        file_idx = {"train": self.data.train_indices, "val": self.data.val_indices}.get(self.split)
        if file_idx is not None and "indices" in d:
            d["file_indices"] = [int(i) for i in file_idx[pos]]  # positions in the 60,000-image file
        d |= {"split": self.split, "root": str(self.data.root)}
        d["sha256"] = hashlib.sha256(np.ascontiguousarray(self.images[pos]).tobytes()).hexdigest()
        return d

    def display_images(self, k: int):
        pos = self._display_positions(k)
        return list(self.images[pos]), self.labels_[pos]


class ArraySource(DataSource):
    """Decoded samples in memory (uint8 images ``[N,H,W(,C)]``, or waveforms for an audio input),
    preprocessed per batch, with optional class labels."""

    kind = "arrays"

    def __init__(self, images, labels, preprocessing, positions=None, role=""):
        super().__init__(positions, role)
        if len(images) == 0 or (labels is not None and len(labels) != len(images)):
            raise DataError(
                f"data holds {len(images)} samples and {None if labels is None else len(labels)} labels; "
                "expected the same number >= 1"
            )
        self.images, self.pre = images, preprocessing
        self.labels_ = None if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
        self.label_kind = None if labels is None else "class"
        self.evidence = REAL_LABELLED if labels is not None else REAL_UNLABELLED

    def _all(self) -> int:
        return len(self.images)

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        return {self.pre.input: self.pre.apply(self.images[positions])}

    def display_images(self, k: int):
        if getattr(self.pre, "kind", "image") != "image":
            return [], None
        pos = self._display_positions(k)
        return list(self.images[pos]), (None if self.labels_ is None else self.labels_[pos])


__all__ = ["ArraySource", "MnistSource", "balanced_positions"]
