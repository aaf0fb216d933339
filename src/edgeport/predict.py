"""Predict with a bundle through the light runtime (no torch): files in, the task's answer out.

Kept deliberately light, because it is timed from process start to printed
label: numpy, Pillow and the chosen runtime only.  Files are decoded and
preprocessed exactly as the bundle's manifest says, a few at a time (memory is
bounded by the chunk, not the number of files), and each task renders its
own answer: top-k classes, boxes drawn on the image, masks overlaid, token
top-k, embedding norms (:mod:`edgeport.tasks`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ConfigError, safe_text

CHUNK = 8  # files decoded and run together


def _load_bundle(path):
    """The bundle loader (one place, so tests and embedders can swap it); a loaded Bundle passes through."""
    from .bundle import Bundle, load_bundle

    return path if isinstance(path, Bundle) else load_bundle(path)


def _check_args(files, top_k) -> list:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise ConfigError("no image files given; pass one or more image files")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 1000:
        raise ConfigError(f"top_k must be a whole number between 1 and 1000, got {top_k!r}; pass 1 or more")
    return list(files)


def _picture_paths(files, out_dir, force: bool, bundle=None) -> list[Path]:
    from .fsutil import check_new_files, check_not_inside

    out = Path(out_dir)
    check_not_inside([out], bundle)  # before the folder is made
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--out-dir {safe_text(out)} cannot be created ({exc.strerror}); choose another folder"
        ) from None
    names = [out / f"{Path(f).stem}.pred.png" for f in files]
    if len(set(names)) != len(names):
        raise ConfigError("two input files share a name; --out-dir would write one picture over the other")
    check_new_files([str(p) for p in names], force)
    return names


def predict_files(
    bundle_path,
    files: Sequence[str | os.PathLike],
    *,
    backend: str = "onnxruntime",
    precision: str = "fp32",
    device: str = "cpu",
    top_k: int = 3,
    max_pixels: int | None = None,
    with_warnings: bool = False,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
):
    """Run the bundle (a folder, or a loaded :class:`~edgeport.bundle.Bundle`) on ``files``; one result dict per file, in order (see the task's ``predict_rows``).

    Classifiers give ``{"file", "label", "top": [{"label", "prob"}, ...]}``; detectors
    ``{"file", "detections": [{"box", "score", "label"}]}``; segmenters ``{"file", "classes"}``;
    embedders ``{"file", "norm", "embedding"}``.  With ``out_dir``, tasks that draw (boxes, masks)
    write ``STEM.pred.png`` there (existing files are kept unless ``force``).  With ``with_warnings``,
    returns (results, the bundle's warnings).
    """
    files = _check_args(files, top_k)
    bundle = _load_bundle(bundle_path)
    pre = bundle.preprocessing
    if pre is None or len(bundle.signature.inputs) != 1:
        raise ConfigError(
            f"bundle {safe_text(bundle.path)} does not take one image input; predict reads image files "
            "(use runner.run() from Python for other inputs)"
        )
    task = bundle.task
    pictures = _picture_paths(files, out_dir, force, bundle.path) if out_dir is not None else None
    for f in files:  # bad files fail before any session is made, and before anything is written
        pre.check_file(f, limit=max_pixels)
    spec = bundle.signature.input(pre.input)
    results = []
    with bundle.runner(backend=backend, precision=precision, device=device) as runner:
        for a in range(0, len(files), CHUNK):
            chunk = files[a : a + CHUNK]
            images = [pre.decode_file(f, limit=max_pixels) for f in chunk]
            x = pre.apply(images)
            outputs = runner.run({pre.input: x})
            rows = task.predict_rows(outputs, list(bundle.labels), top_k=top_k)
            for i, (f, row) in enumerate(zip(chunk, rows, strict=True)):
                results.append({"file": os.fspath(f), **row})
                if pictures is not None:
                    size = x.shape[2:4] if spec.layout == "NCHW" else x.shape[1:3]  # the model input's H, W
                    pic = task.picture(images[i], row, {k: v[i] for k, v in outputs.items()}, tuple(size))
                    if pic is not None:
                        _save(pic, pictures[a + i])
                        results[-1]["picture"] = str(pictures[a + i])
            del images, x, outputs
    return (results, bundle.warnings) if with_warnings else results


def _save(picture, path: Path) -> None:
    import io

    from .fsutil import atomic_write

    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())


def rank(probs: np.ndarray, labels: list[str], files: list[str], *, top_k: int = 3) -> list[dict]:
    """Turn ``probs [N,C]`` into classifier result dicts (kept for embedders of edgeport 0.2)."""
    from .tasks.render import top_k as ranked

    results = []
    for name, row in zip(files, np.asarray(probs, dtype=np.float64)):
        top = ranked(row, labels, top_k, False)
        results.append({"file": name, "label": top[0]["label"], "top": top})
    return results


def format_predictions(results: list[dict], task=None) -> str:
    """Human output: one line per file, ``FILE: ANSWER``; untrusted text escaped."""
    from .tasks import registry

    task = task or registry.task_class("classify")(None)
    lines = []
    for r in results:
        line = f"{safe_text(r['file'], 300)}: {task.format_row(r)}"
        if r.get("picture"):
            line += f"  -> {safe_text(r['picture'], 300)}"
        lines.append(line)
    return "\n".join(lines)


def format_json(results: list[dict]) -> str:
    """Machine output: a JSON list of the result dicts (JSON escapes control characters itself)."""
    return json.dumps(results, indent=2, ensure_ascii=True)


__all__ = ["predict_files", "rank", "format_predictions", "format_json"]
