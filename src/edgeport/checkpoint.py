"""Checkpoints and run folders: weights in safetensors (no unpickling) plus ``train.json``.

A run folder (``edgeport train``) holds ``model.safetensors`` and ``train.json``.
Loading never unpickles anything, and a run folder is as untrusted as a
bundle: a ``train.json`` that names model code to import is refused unless
the user trusts it (``EDGEPORT_TRUST_MODEL_CODE=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import BundleError

WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FORMAT = "edgeport-checkpoint/1"
TRAIN_FILE = "train.json"
TRAIN_SUMMARY_KEYS = (
    "model",
    "params",
    "epochs",
    "seed",
    "config",
    "train_seconds",
    "val_accuracy",
    "test_accuracy",
    "test_loss",
    "split",
    "environment",
)
MAX_TRAIN_JSON = 16 << 20


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_run_files(folder: str | os.PathLike, state_dict: dict, info: dict) -> dict:
    """Write a run folder's ``model.safetensors`` and ``train.json`` into ``folder``, each atomically.

    The one run-folder writer (``edgeport train``, the zoo's recipes, the pipeline's train stage);
    returns ``info`` with the checkpoint's sha256 added, as written.
    """
    from safetensors.torch import save

    from .fsutil import atomic_write

    folder = Path(folder)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write(
        folder / WEIGHTS_FILE, save(tensors, metadata={"model": info["model"], "format": CHECKPOINT_FORMAT})
    )
    info = dict(info, checkpoint_sha256=sha256_file(folder / WEIGHTS_FILE))
    atomic_write(folder / TRAIN_FILE, json.dumps(info, indent=2) + "\n")
    return info


def load_weights(path: str | os.PathLike) -> tuple[dict, dict[str, str]]:
    """Tensors and metadata of a safetensors file; :class:`BundleError` if it is unreadable."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BundleError(
            f"checkpoint {path} not found; train first (edgeport train) or pass the right --run"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(
            f"checkpoint {path} is corrupt or not a safetensors file ({first}); retrain or restore it"
        ) from None
    return tensors, meta


def read_train_json(run_dir: Path) -> dict:
    path = Path(run_dir) / TRAIN_FILE
    if not path.is_file() or path.is_symlink():
        raise BundleError(f"{path} not found; is {run_dir} a run folder written by `edgeport train`?")
    if path.stat().st_size > MAX_TRAIN_JSON:
        raise BundleError(
            f"{path} is larger than {MAX_TRAIN_JSON >> 20} MiB; it is not a train.json edgeport wrote"
        )
    from .jsonsafe import JSONValueError, loads

    try:
        info = loads(path.read_bytes())
    except JSONValueError as exc:
        raise BundleError(f"{path} is not valid JSON ({str(exc)[:100]}); retrain or restore it") from None
    if not isinstance(info, dict) or not isinstance(info.get("model"), str) or len(info["model"]) > 300:
        raise BundleError(f"{path} has no valid 'model' field; retrain or restore it")
    for key, kind in (("model_args", dict), ("labels", list), ("preprocessing", dict), ("history", list)):
        if key in info and not isinstance(info[key], kind):
            raise BundleError(f"{path}: field {key!r} must be a {kind.__name__}; retrain or restore it")
    if "preprocessing" in info:
        _check_preprocessing(path, info["preprocessing"])
    return info


def _check_preprocessing(path: Path, pre: dict) -> None:
    """A run folder's preprocessing block, by the rules every step list follows (:mod:`.image_steps`)."""
    from .image_steps import _check_steps

    def fail(where: str, what: str) -> BundleError:
        return BundleError(f"{path}: {where} {what}; retrain, or fix or restore the file")

    if not isinstance(pre.get("input", "input"), str) or not isinstance(pre.get("preset"), (str, type(None))):
        raise fail("preprocessing", "needs a string input name and preset")
    _check_steps(pre.get("steps"), fail)
