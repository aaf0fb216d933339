"""``npz:FILE``: arrays keyed by input name, and optional labels, read a batch at a time.

Label arrays (each optional, none an input name):

- ``labels``: integer ``[N]`` class ids, ``[N,S]`` token ids, ``[N,H,W]`` label maps, or floats
  ``[N,...]`` (regression targets);
- ``boxes`` ``[N,K,4]`` (xyxy, model-input pixels) with ``classes`` ``[N,K]`` (``-1`` pads an image
  with fewer than K boxes): detection labels, yielded as an object array of per-image
  ``{"boxes", "classes"}`` dicts.

The file goes through :class:`edgeport.npzio.NpzReader`: headers and sizes are checked before any
data is read, and rows are read on demand, so ``--limit 10`` reads ten rows of a huge file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..npzio import NpzReader
from ..specs import Signature
from .base import REAL_LABELLED, REAL_UNLABELLED, DataSource

LABEL_KEYS = ("labels", "boxes", "classes")


class NpzSource(DataSource):
    kind = "npz"

    def __init__(self, path: Path, signature: Signature, preprocessing=None, positions=None, role=""):
        super().__init__(positions, role)
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"npz:{self.path}: file not found")
        self.where = f"npz:{self.path}"
        self.reader = NpzReader(self.path, where=self.where)
        self.signature, self.pre = signature, preprocessing
        self.inputs = list(signature.input_names)
        self._check_names()
        self._check_lengths()
        self._check_dtypes()
        self.label_kind = self._label_kind()
        self.labels_ = self._int_rows("labels", None) if self.label_kind == "class" else None
        self.evidence = REAL_LABELLED if self.label_kind else REAL_UNLABELLED

    # -- checks ----------------------------------------------------------------------------
    def _check_names(self) -> None:
        have = set(self.reader.members)
        names = set(self.inputs)
        allowed = names | {k for k in LABEL_KEYS if k not in names}
        missing, extra = sorted(names - have), sorted(have - allowed)
        if missing or extra:
            raise DataError(
                f"{self.where} has arrays {sorted(have)[:10]}; it needs {sorted(names)} (plus optional "
                f"'labels', or 'boxes' with 'classes')" + (f", unknown: {extra[:5]}" if extra else "")
            )

    def _check_lengths(self) -> None:
        counts = {n: m.shape[0] for n, m in self.reader.members.items()}
        if len(set(counts.values())) != 1:
            raise DataError(
                f"{self.where}: arrays have different lengths {counts}; expected one row per sample"
            )
        if not next(iter(counts.values())):
            raise DataError(f"{self.where}: the arrays hold no samples (length 0)")

    def _check_dtypes(self) -> None:
        for spec in self.signature.inputs:
            dtype = self.reader.members[spec.name].dtype
            raw_images = self.pre is not None and spec.name == self.pre.input and dtype == np.uint8
            if dtype != spec.np_dtype and not raw_images:
                raise DataError(
                    f"{self.where}: array {spec.name!r} is {dtype}, the model takes {spec.dtype} "
                    "(or uint8 images for an image input with preprocessing)"
                )

    def _label_kind(self) -> str | None:
        m = self.reader.members
        names = set(self.inputs)
        boxes, classes = ("boxes" in m and "boxes" not in names), ("classes" in m and "classes" not in names)
        labels = "labels" in m and "labels" not in names
        if boxes or classes:
            if not (boxes and classes) or labels:
                raise DataError(
                    f"{self.where}: detection labels need both 'boxes' [N,K,4] and 'classes' [N,K] "
                    "(and no 'labels')"
                )
            b, c = m["boxes"], m["classes"]
            if len(b.shape) != 3 or b.shape[2] != 4 or c.shape != b.shape[:2] or c.dtype.kind not in "iu":
                raise DataError(
                    f"{self.where}: 'boxes' is {list(b.shape)} {b.dtype} and 'classes' {list(c.shape)} {c.dtype}; "
                    "expected boxes [N,K,4] (xyxy, model-input pixels) and integer classes [N,K] (-1 pads)"
                )
            return "boxes"
        if not labels:
            return None
        lab = m["labels"]
        if lab.dtype.kind == "f":
            return "values"
        kinds = {1: "class", 2: "tokens", 3: "mask"}
        if len(lab.shape) not in kinds:
            raise DataError(
                f"{self.where}: integer 'labels' are {list(lab.shape)}; expected class ids [N], token ids "
                "[N,S] or label maps [N,H,W] (floats for regression targets)"
            )
        return kinds[len(lab.shape)]

    # -- reading ---------------------------------------------------------------------------
    def _all(self) -> int:
        return self.reader.members[self.inputs[0]].shape[0]

    def _labels_full(self):
        return self.labels_

    def _int_rows(self, name: str, positions) -> np.ndarray:
        if positions is None:
            positions = np.arange(self.reader.members[name].shape[0])
        return self.reader.rows(name, positions).astype(np.int64)

    def _feeds(self, positions):
        out = {}
        for name in self.inputs:
            x = self.reader.rows(name, positions)
            if self.pre is not None and name == self.pre.input and x.dtype == np.uint8:
                x = self.pre.apply(x)
            out[name] = np.ascontiguousarray(x)
        return out

    def _batch(self, positions, labels):
        feeds = self._feeds(positions)
        kind = self.label_kind
        if kind == "class":
            return feeds, labels[positions]
        if kind in ("tokens", "mask"):
            return feeds, self._int_rows("labels", positions)
        if kind == "values":
            return feeds, self.reader.rows("labels", positions)
        if kind == "boxes":
            return feeds, self._boxes(positions)
        return feeds, None

    def _boxes(self, positions) -> np.ndarray:
        boxes = self.reader.rows("boxes", positions).astype(np.float64)
        classes = self._int_rows("classes", positions)
        out = np.empty(len(positions), dtype=object)
        for i, (b, c) in enumerate(zip(boxes, classes)):
            keep = c >= 0
            if (c < -1).any() or not np.isfinite(b[keep]).all():
                raise DataError(
                    f"{self.where}: sample {int(positions[i])} has a class below -1 or a non-finite box; "
                    "classes are 0.. with -1 as padding, boxes finite xyxy pixels"
                )
            out[i] = {"boxes": b[keep].reshape(-1, 4), "classes": c[keep]}
        return out

    def identity(self) -> dict:
        from ..checkpoint import sha256_file

        d = super().identity()
        d |= {"path": str(self.path), "file_sha256": sha256_file(self.path), "labels": self.label_kind}
        return d
