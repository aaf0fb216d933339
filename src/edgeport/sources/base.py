"""The data-source protocol, the recorded splits and the helpers every source shares.

A source is re-iterable and sized, like ``nncf.Dataset``: ``batches(n)`` yields
``(feeds, labels | None)`` with ``feeds`` a dict input name -> model-ready
array, reading and preprocessing one batch at a time so memory is bounded by
the batch, not the data set.  Labels take the form of the task's
``label_kind`` (class ids, label maps, token ids, values, or an object array
of per-image box dicts).  Each source records its identity (where it came
from, which samples, a sha256) and its evidence: real labelled, real
unlabelled, or random.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError

REAL_LABELLED = "real labelled"
REAL_UNLABELLED = "real unlabelled"
RANDOM = "random inputs: weak evidence"
MAX_LISTED = 20_000  # file names recorded in an identity; more are summarised by their hash
MAX_HASHED = 2000  # splits up to this many files also hash the files' bytes


def pool() -> ThreadPoolExecutor:
    from ..host import cpu_count

    return ThreadPoolExecutor(max_workers=max(1, cpu_count()))


class DataSource:
    """Base class: subclasses implement ``_all``, ``_feeds(positions)`` (or ``_batch``) and ``identity``."""

    kind = ""
    evidence = RANDOM
    classes: list[str] | None = None
    label_kind: str | None = None  # class, mask, tokens, values, boxes (None: no labels)

    def __init__(self, positions: np.ndarray | None = None, role: str = "") -> None:
        self.positions = None if positions is None else np.asarray(positions, np.int64)
        self.role = role

    def _all(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._all() if self.positions is None else len(self.positions)

    def _pos(self) -> np.ndarray:
        return np.arange(self._all()) if self.positions is None else self.positions

    def labels_array(self) -> np.ndarray | None:
        """Every label of this source in memory, where they are small (None for streamed label maps)."""
        full = self._labels_full()
        return None if full is None else full[self._pos()]

    def class_labels(self) -> np.ndarray | None:
        """Class ids to balance a split on; None when the labels are not one class per sample."""
        return self.labels_array() if self.label_kind == "class" else None

    def _labels_full(self) -> np.ndarray | None:
        return None

    def _feeds(self, positions: np.ndarray) -> dict:
        raise NotImplementedError

    def _batch(self, positions: np.ndarray, labels: np.ndarray | None) -> tuple[dict, np.ndarray | None]:
        """One batch: feeds and labels of the samples at ``positions`` (``labels``: ``_labels_full()``)."""
        return self._feeds(positions), (None if labels is None else labels[positions])

    def batches(self, batch_size: int = 64) -> Iterator[tuple[dict, np.ndarray | None]]:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch size must be a whole number >= 1, got {batch_size!r}")
        pos = self._pos()
        labels = self._labels_full()
        for i in range(0, len(pos), batch_size):
            yield self._batch(pos[i : i + batch_size], labels)

    def __iter__(self):
        return (feeds for feeds, _ in self.batches())

    def subset(self, positions, role: str) -> DataSource:
        """The samples at ``positions`` (positions into this source) as a new source."""
        sub = copy.copy(self)
        sub.positions = self._pos()[np.asarray(positions, np.int64)]
        sub.role = role
        return sub

    def identity(self) -> dict:
        pos = self._pos()
        d = {"kind": self.kind, "role": self.role, "n": int(len(pos)), "evidence": self.evidence}
        d["indices_sha256"] = hashlib.sha256(np.ascontiguousarray(pos, np.int64).tobytes()).hexdigest()
        if len(pos) <= MAX_LISTED:
            d["indices"] = [int(i) for i in pos]
        return d

    def display_images(self, k: int) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Up to ``k`` decoded images (uint8 HW or HWC) for the report, with their labels."""
        return [], None

    def _display_positions(self, k: int) -> np.ndarray:
        """``k`` positions for the report's sample grid: one class after another where labels exist
        (a sorted image folder would otherwise show only its first class), in label order."""
        pos = self._pos()
        k = min(k, len(pos))
        labels = self.class_labels()
        if labels is None:
            return pos[:k]
        chosen = pos[balanced_positions(labels, k, seed=0)]
        full = self._labels_full()
        return chosen[np.argsort(full[chosen], kind="stable")]


def file_identity(d: dict, root, files: list, pos: np.ndarray, extra_hashed=()) -> dict:
    """A file-backed source's identity: relative names (or their hash), and the bytes of small splits."""
    from pathlib import Path

    d.pop("indices", None)
    rel = [Path(files[i]).relative_to(root).as_posix() for i in pos]
    d["root"] = str(root)
    d["files_sha256"] = hashlib.sha256("\n".join(rel).encode("utf-8", "surrogateescape")).hexdigest()
    if len(rel) <= MAX_LISTED:
        d["files"] = rel
    if len(pos) <= MAX_HASHED:  # small splits (calibration): hash the bytes too
        h = hashlib.sha256()
        for i in pos:
            h.update(Path(files[i]).read_bytes())
            for more in extra_hashed:
                h.update(Path(more[i]).read_bytes())
        d["sha256"] = h.hexdigest()
    return d


# --------------------------------------------------------------------------- splitting


def balanced_positions(labels: np.ndarray | None, size: int, seed: int, n: int | None = None) -> np.ndarray:
    """``size`` positions, class-balanced where labels exist (round-robin over shuffled classes)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        total = int(n)
        if size > total:
            raise DataError(f"a split of {size} samples was asked for, but the data holds only {total}")
        return np.sort(rng.permutation(total)[:size])
    labels = np.asarray(labels)
    if size > len(labels):
        raise DataError(
            f"a calibration set of {size} samples was asked for, but the data holds only {len(labels)}; "
            "pass a smaller --calibration-size"
        )
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    depth = max(len(p) for p in per_class)
    grid = np.full((depth, len(per_class)), -1, dtype=np.int64)
    for j, p in enumerate(per_class):
        grid[: len(p), j] = p
    order = grid.ravel()
    return order[order >= 0][:size]


@dataclass
class DataPlan:
    """Where every stage's data comes from, and proof that calibration never meets the verdict."""

    calibration: DataSource
    selection: DataSource  # int8 candidates are scored here
    eval: DataSource  # the accuracy verdict, parity, golden I/O

    @property
    def evidence(self) -> str:
        return self.eval.evidence

    def identity(self) -> dict:
        return {
            "calibration": self.calibration.identity(),
            "selection": _short(self.selection.identity()),
            "eval": _short(self.eval.identity()),
            "evidence": self.evidence,
        }


def _short(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("indices", "file_indices", "files")}


def first_batch(source: DataSource, n: int) -> tuple[dict, np.ndarray | None]:
    """The first ``n`` samples of ``source`` as one batch."""
    sub = source.subset(np.arange(min(n, len(source))), source.role)
    return next(sub.batches(max(1, len(sub))))
