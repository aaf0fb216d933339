"""Data from Python: any iterable of samples, as a :class:`DataSource` (the NNCF ``Dataset`` lesson).

``Dataset(items, transform)`` wraps what the user already has (a list, a generator, a torch
``DataLoader``); ``transform`` turns each item into model feeds.  An item (after ``transform``) is

- a dict ``{input name: array}``, one sample (the input's rank without the batch axis) or a batch;
- a bare array (or tensor), for a model with one input;
- a pair ``(feeds, label)``: ``label`` a class id (or an array of them, one per sample of a batch).

The items are read once, checked against the model's inputs (names, rank, dtype, shape, finite
values) and kept in memory, so a generator can be passed too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..errors import DataError
from .base import REAL_LABELLED, REAL_UNLABELLED, DataSource

MAX_ITEMS = 1_000_000


class Dataset:
    """``items`` (any iterable) plus ``transform(item) -> feeds | (feeds, label)`` (None: as they are)."""

    def __init__(self, items: Iterable, transform: Callable | None = None) -> None:
        self.items, self.transform = items, transform

    def __iter__(self):
        for item in self.items:
            yield item if self.transform is None else self.transform(item)


def _array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if not isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        raise DataError(f"data item: {name!r} is a {type(x).__name__}; give a numpy array or a tensor")
    return np.asarray(x)


class FeedSource(DataSource):
    """Samples given in Python, batched in memory; class labels when the items carried them."""

    kind = "python"

    def __init__(self, arrays: dict, labels=None, positions=None, role: str = "") -> None:
        super().__init__(positions, role)
        self.arrays = arrays
        self.labels_ = labels
        self.label_kind = None if labels is None else "class"
        self.evidence = REAL_LABELLED if labels is not None else REAL_UNLABELLED

    def _all(self) -> int:
        return len(next(iter(self.arrays.values())))

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions) -> dict:
        return {k: np.ascontiguousarray(v[positions]) for k, v in self.arrays.items()}

    def subset(self, positions, role: str) -> DataSource:
        return FeedSource(self.arrays, self.labels_, self._pos()[np.asarray(positions)], role)

    @classmethod
    def from_items(cls, items, signature, role: str = "") -> FeedSource:
        """Every item of ``items`` read, checked against ``signature`` and stacked."""
        if isinstance(items, (str, bytes, dict)) or not isinstance(items, Iterable):
            raise DataError(f"data: expected an iterable of samples, got a {type(items).__name__}")
        parts: dict[str, list] = {n: [] for n in signature.input_names}
        labels: list = []
        for i, item in enumerate(items):
            if i >= MAX_ITEMS:
                raise DataError(
                    f"data: more than {MAX_ITEMS:,} items; pass a DataSource that reads in batches"
                )
            feeds, label = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
            batch = _one(feeds, signature, i)
            for name, x in batch.items():
                parts[name].append(x)
            n = len(next(iter(batch.values())))
            if label is not None:
                lab = _array(label, "label").reshape(-1)
                if lab.size != n or lab.dtype.kind not in "iu":
                    raise DataError(
                        f"data item {i}: label must be {n} integer class id(s), got {lab.dtype} {lab.shape}"
                    )
                labels.append(lab.astype(np.int64))
        if not parts[signature.input_names[0]]:
            raise DataError("data: the iterable gave no samples")
        if labels and len(labels) != len(parts[signature.input_names[0]]):
            raise DataError("data: some items carry a label and some do not; label every item or none")
        try:
            arrays = {k: np.concatenate(v) for k, v in parts.items()}
        except ValueError:
            raise DataError(
                "data: the items differ in shape along a dynamic axis; give items of one size (pad them), "
                "or one batch per size through separate calls"
            ) from None
        return cls(arrays, np.concatenate(labels) if labels else None, role=role)


def _one(feeds, signature, i: int) -> dict:
    """One item as ``{name: batch array}``, checked against the model's inputs."""
    names = signature.input_names
    if not isinstance(feeds, dict):
        if len(names) != 1:
            raise DataError(f"data item {i}: the model takes {names}; give a dict of arrays by input name")
        feeds = {names[0]: feeds}
    if set(feeds) != set(names):
        raise DataError(f"data item {i} has {sorted(map(str, feeds))[:8]}; the model takes {names}")
    out = {}
    for spec in signature.inputs:
        x = _array(feeds[spec.name], spec.name)
        if x.ndim == spec.rank - 1:
            x = x[None]  # one sample
        if x.ndim != spec.rank:
            raise DataError(
                f"data item {i}: {spec.name!r} has rank {x.ndim}; the model takes {spec.shape_text()}"
            )
        if x.dtype != spec.np_dtype:
            if x.dtype.kind == spec.np_dtype.kind or (x.dtype.kind in "iu" and spec.np_dtype.kind in "iu"):
                x = x.astype(spec.np_dtype)
            else:
                raise DataError(f"data item {i}: {spec.name!r} is {x.dtype}; the model takes {spec.dtype}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise DataError(f"data item {i}: {spec.name!r} holds NaN or infinity")
        for axis, want in enumerate(spec.shape):
            if axis and isinstance(want, int) and x.shape[axis] != want:
                raise DataError(
                    f"data item {i}: {spec.name!r} has shape {list(x.shape)}; the model takes {spec.shape_text()}"
                )
        out[spec.name] = x
    return out


__all__ = ["Dataset", "FeedSource"]
