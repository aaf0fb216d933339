"""Classify image files with a bundle through the light runtime (no torch).

Kept deliberately light, because it is timed from process start to printed
label: numpy, Pillow and the chosen runtime only.  Images are decoded and
preprocessed exactly as the bundle's manifest says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError, safe_text


def _load_bundle(path: str | os.PathLike):
    """The bundle loader (one place, so tests and embedders can swap it)."""
    from .bundle import load_bundle

    return load_bundle(path)


def predict_files(
    bundle_path: str | os.PathLike,
    files: Sequence[str | os.PathLike],
    *,
    backend: str = "onnxruntime",
    precision: str = "fp32",
    device: str = "cpu",
    top_k: int = 3,
    max_pixels: int | None = None,
    with_warnings: bool = False,
):
    """Classify ``files`` with the bundle at ``bundle_path``.

    Returns one ``{"file", "label", "top": [{"label", "prob"}, ...]}`` per file,
    in order, with ``top_k`` classes by decreasing probability (and, with
    ``with_warnings``, the bundle's warnings, e.g. "random weights: not for accuracy").
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise ConfigError("no image files given; pass one or more image files")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 1000:
        raise ConfigError(f"top_k must be a whole number between 1 and 1000, got {top_k!r}; pass 1 or more")
    bundle = _load_bundle(bundle_path)
    pre = bundle.preprocessing
    if pre is None:
        raise ConfigError(
            f"bundle {safe_text(bundle_path)} has no image input; it cannot classify image files"
        )
    images = [
        pre.decode_file(f, limit=max_pixels) for f in files
    ]  # bad files fail before any session is made
    with bundle.runner(backend=backend, precision=precision, device=device) as runner:
        _, probs = runner.predict(images)
    results = rank(probs, list(bundle.labels), [os.fspath(f) for f in files], top_k=top_k)
    return (results, bundle.warnings) if with_warnings else results


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
    """Human output: one line per file, ``FILE: LABEL  (LABEL 97.1%, ...)``; untrusted text escaped."""
    lines = []
    for r in results:
        top = ", ".join(f"{safe_text(t['label'], 80)} {t['prob'] * 100:.1f}%" for t in r["top"])
        lines.append(f"{safe_text(r['file'], 300)}: {safe_text(r['label'], 80)}  ({top})")
    return "\n".join(lines)


def format_json(results: list[dict]) -> str:
    """Machine output: a JSON list of the result dicts (JSON escapes control characters itself)."""
    return json.dumps(results, indent=2, ensure_ascii=True)


__all__ = ["predict_files", "rank", "format_predictions", "format_json"]
