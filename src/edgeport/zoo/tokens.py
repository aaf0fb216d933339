"""Synthetic token sequences with a tagging rule that needs context.

Vocabulary of 256 ids: ``1`` and ``2`` are topic markers (A and B), ``3..255`` are words, each in
one of four word classes (a fixed hash of its id), ``0`` is never drawn.  Each sequence holds
exactly one marker.  A word's tag is its word class, plus 4 when the sequence's marker is B; the
marker's tag is 8: nine tags in all, and a word's tag depends on a token that may be anywhere in
the sequence (before or after it), so the tagger must attend across the sequence.

Stored as npz (``ids`` and ``labels``, int64 ``[N, S]``: ``--data npz:FILE``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VOCAB = 256
MARKERS = (1, 2)
FIRST_WORD = 3
NUM_TAGS = 9
TAGS = ("A-noun", "A-verb", "A-adj", "A-other", "B-noun", "B-verb", "B-adj", "B-other", "TOPIC")


def word_class(ids: np.ndarray) -> np.ndarray:
    return (np.asarray(ids, np.int64) * 2654435761 % 4093) % 4


def tag(ids: np.ndarray) -> np.ndarray:
    """The tags of ``ids`` ``[N, S]`` (each row holding exactly one marker)."""
    ids = np.asarray(ids, np.int64)
    topic_b = (ids == MARKERS[1]).any(1, keepdims=True)
    tags = word_class(ids) + 4 * topic_b
    return np.where(np.isin(ids, MARKERS), 8, tags).astype(np.int64)


def make_sequences(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids [n, length], tags [n, length], marker position [n]); row ``i`` depends on (seed, i) only."""
    ids = np.empty((n, length), np.int64)
    where = np.empty(n, np.int64)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        ids[i] = rng.integers(FIRST_WORD, VOCAB, length)
        where[i] = rng.integers(0, length)
        ids[i, where[i]] = MARKERS[int(rng.integers(0, 2))]
    return ids, tag(ids), where


def crop(ids: np.ndarray, where: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A window of ``length`` tokens from every row that still holds the row's marker."""
    lo = np.clip(where - length + 1, 0, ids.shape[1] - length)
    hi = np.clip(where, 0, ids.shape[1] - length)
    start = rng.integers(lo, hi + 1)
    return np.stack([row[s : s + length] for row, s in zip(ids, start)])


def write_npz(path: str | Path, ids: np.ndarray, labels: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=ids.astype(np.int64), labels=labels.astype(np.int64))
    return path
