"""Thin adapters that feed one :class:`CalibrationSet` to each quantizer.

All three read the same images in the same order, so every int8 artifact is
calibrated on identical data.  The heavy libraries are imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .dataset import CalibrationSet


def ort_reader(calset: CalibrationSet, input_name: str = "input"):
    """An ONNX Runtime ``CalibrationDataReader`` over ``calset`` (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] | None = None

        def get_next(self):
            if self._it is None:
                self._it = iter(calset)
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

        def rewind(self) -> None:
            self._it = None

        def __len__(self) -> int:
            return calset.num_batches

    return _Reader()


class _Samples:
    """One-image batches ``[1,1,H,W]``, streamed from the batched set (re-iterable, sized)."""

    def __init__(self, calset: CalibrationSet) -> None:
        self._calset = calset

    def __len__(self) -> int:
        return len(self._calset)

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self._calset:
            for i in range(len(batch)):
                yield batch[i : i + 1]


def nncf_dataset(calset: CalibrationSet):
    """An ``nncf.Dataset`` of single images, so NNCF collects per-sample statistics
    (no batchwise-statistics caveat) and ``subset_size=len(calset)`` counts images."""
    from . import import_nncf

    return import_nncf().Dataset(_Samples(calset))


def torch_batches(calset: CalibrationSet) -> Iterator:
    """``torch.Tensor`` batches for torch.ao observers."""
    import torch

    for batch in calset:
        yield torch.from_numpy(batch)
