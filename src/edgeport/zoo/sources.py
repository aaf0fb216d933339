"""Data sources over the generated sets, for the Python API (``edgeport.verify(bundle, data=...)``).

:class:`LabelledArrays` holds inputs and labels of any kind (class ids, label maps, token tags, or
the detect task's per-image box dicts) in memory; uint8 images are run through the bundle's
preprocessing steps one batch at a time, like every file source.  :func:`source_for` opens the
validation (or training) set a run folder holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..sources.data import REAL_LABELLED, DataSource


class LabelledArrays(DataSource):
    kind = "arrays"
    evidence = REAL_LABELLED

    def __init__(self, feeds: dict, labels, preprocessing=None, *, classes=None, positions=None, role="eval"):
        super().__init__(positions, role)
        counts = {len(v) for v in feeds.values()}
        if len(counts) != 1 or (labels is not None and len(labels) not in counts):
            raise DataError(f"arrays of different lengths: inputs {sorted(counts)}, labels {len(labels)}")
        self.arrays, self.labels_, self.pre = feeds, labels, preprocessing
        self.classes = None if classes is None else list(classes)

    def _all(self) -> int:
        return len(next(iter(self.arrays.values())))

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        out = {}
        for name, a in self.arrays.items():
            x = a[positions]
            if self.pre is not None and name == self.pre.input and x.dtype == np.uint8:
                x = self.pre.apply(x)
            out[name] = np.ascontiguousarray(x)
        return out


def source_for(run: str | Path, preprocessing=None, split: str = "val") -> LabelledArrays:
    """The labelled ``split`` (train or val) a run folder of ``edgeport train`` holds, by its recipe."""
    import json

    run = Path(run)
    info = json.loads((run / "train.json").read_text())
    kind, _, rel = info["data"][split].partition(":")
    path = run / rel
    if kind == "coco":
        from .shapes import read_coco

        s = read_coco(path)
        return LabelledArrays(
            {"image": s.images}, s.detection_labels(), preprocessing, classes=info["labels"]
        )
    if kind == "segfolder":
        from .shapes import read_segfolder

        images, masks = read_segfolder(path)
        return LabelledArrays(
            {"image": images}, masks.astype(np.int64), preprocessing, classes=info["labels"]
        )
    if kind == "npz":
        with np.load(path) as z:
            return LabelledArrays({"ids": z["ids"]}, z["labels"], classes=info["labels"])
    raise DataError(f"{run}: no reader for {kind}: data")
