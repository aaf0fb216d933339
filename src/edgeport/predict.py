"""Classify image files with a bundle through the light runtime (no torch).

Kept deliberately light, because it is timed from process start to printed
label: numpy, Pillow and the chosen runtime only.  The bundle loader imports
onnxruntime or openvino for the backend asked for, nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError
from .imageio import load_images


def _load_bundle(path: str | os.PathLike):
    """The bundle loader (one place, so tests and embedders can swap it)."""
    from .export.bundle import load_bundle

    return load_bundle(path)


def predict_files(
    bundle_path: str | os.PathLike,
    files: Sequence[str | os.PathLike],
    *,
    backend: str = "onnxruntime",
    precision: str = "fp32",
    device: str = "cpu",
    top_k: int = 3,
) -> list[dict]:
    """Classify ``files`` (PNG/JPEG, any size) with the bundle at ``bundle_path``.

    Returns one ``{"file", "label", "top": [{"label", "prob"}, ...]}`` per file,
    in order, with ``top_k`` classes by decreasing probability.  Raises
    :class:`~edgeport.errors.DataError` for unreadable images, and the
    bundle/runtime errors of :func:`edgeport.export.bundle.load_bundle`.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise ConfigError("no image files given; pass one or more PNG or JPEG files")
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a whole number >= 1, got {top_k!r}; pass 1 or more")
    images = load_images(files)  # bad files fail before the bundle is loaded
    bundle = _load_bundle(bundle_path)
    with bundle.runner(backend=backend, precision=precision, device=device) as runner:
        _, probs = runner.predict(images)
    return rank(probs, list(bundle.labels), [os.fspath(f) for f in files], top_k=top_k)


def rank(probs: np.ndarray, labels: list[str], files: list[str], *, top_k: int = 3) -> list[dict]:
    """Turn ``probs [N,C]`` into the result dicts of :func:`predict_files`."""
    probs = np.asarray(probs, dtype=np.float64)
    k = min(top_k, probs.shape[1])
    results = []
    for name, row in zip(files, probs):
        order = np.argsort(-row, kind="stable")[:k]
        top = [{"label": _name(labels, int(i)), "prob": round(float(row[i]), 6)} for i in order]
        results.append({"file": name, "label": top[0]["label"], "top": top})
    return results


def _name(labels: list[str], i: int) -> str:
    return str(labels[i]) if i < len(labels) else str(i)


def format_predictions(results: list[dict]) -> str:
    """Human output: one line per file, ``FILE: LABEL  (LABEL 97.1%, LABEL 1.9%, ...)``."""
    lines = []
    for r in results:
        top = ", ".join(f"{t['label']} {t['prob'] * 100:.1f}%" for t in r["top"])
        lines.append(f"{r['file']}: {r['label']}  ({top})")
    return "\n".join(lines)


def format_json(results: list[dict]) -> str:
    """Machine output: a JSON list of the result dicts."""
    return json.dumps(results, indent=2)


__all__ = ["predict_files", "rank", "format_predictions", "format_json"]
