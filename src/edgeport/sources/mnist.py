"""MNIST through torchvision: where it lives, the fixed splits, preprocessing.

The root is ``--data-dir``, else ``$EDGEPORT_MNIST_ROOT``, else a user cache
folder.  torchvision downloads MNIST there when it is missing and the network
allows; otherwise a one-line :class:`DataError` says which files are expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, EdgeportError
from ..preprocessing import MNIST_LABELS, Preprocessing, from_preset

ENV_ROOT = "EDGEPORT_MNIST_ROOT"
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# The train/validation split never changes with the training seed, so a
# calibration set drawn from "train" can never leak validation images.
SPLIT_SEED = 20240607
VAL_SIZE = 5_000


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeport" / "mnist"


def resolve_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$EDGEPORT_MNIST_ROOT``, else the user cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    return default_cache_root()


@dataclass(frozen=True)
class MnistData:
    """MNIST as uint8 arrays ``[N,28,28]`` with the fixed train/validation split."""

    root: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    train_indices: np.ndarray  # positions in the 60,000-image training file
    val_indices: np.ndarray
    preprocessing: Preprocessing = field(default_factory=lambda: from_preset("mnist"))
    labels: list[str] = field(default_factory=lambda: list(MNIST_LABELS))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def _missing_message(root: Path, why: str) -> str:
    raw = root / "MNIST" / "raw"
    return (
        f"MNIST not found under {root} ({why}); expected {', '.join(RAW_FILES)} in {raw}. "
        f"Pass --data-dir or set {ENV_ROOT} to a folder holding MNIST/raw/, "
        "or connect to the internet so torchvision can download it"
    )


def _open(root: Path, train: bool, download: bool):
    try:
        import torchvision
    except ImportError:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(
            "reading MNIST needs torchvision, which the light install lacks: pip install 'edgeport[export]'"
        ) from None

    try:
        return torchvision.datasets.MNIST(root=str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise DataError(_missing_message(root, "download disabled")) from None
    try:
        root.mkdir(parents=True, exist_ok=True)
        return torchvision.datasets.MNIST(root=str(root), train=train, download=True)
    except Exception as exc:  # network down, unwritable cache, corrupt download
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(_missing_message(root, f"download failed: {reason}")) from None


def split_indices(n: int = 60_000, val_size: int = VAL_SIZE, seed: int = SPLIT_SEED):
    """Fixed, seeded partition of the training file into train and validation."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> MnistData:
    """Load MNIST (downloading it when allowed) and apply the fixed 55k/5k split."""
    root = resolve_root(data_dir)
    if root.exists() and not root.is_dir():
        raise DataError(f"MNIST root {root} is a file, not a folder; pass the folder that holds MNIST/raw/")
    try:
        train = _open(root, True, download)
        test = _open(root, False, download)
        x_all = train.data.numpy()
        y_all = train.targets.numpy()
        x_test = test.data.numpy()
        y_test = test.targets.numpy()
    except EdgeportError:
        raise
    except Exception as exc:  # truncated or corrupt IDX files
        raise DataError(
            f"MNIST files under {root / 'MNIST' / 'raw'} could not be read ({exc}); "
            "delete them and download again"
        ) from None
    _validate(root, x_all, y_all, "training")
    _validate(root, x_test, y_test, "test")
    n = len(x_all)
    val_size = VAL_SIZE if n == 60_000 else max(1, n // 12)
    tr_idx, va_idx = split_indices(n, val_size)
    return MnistData(
        root=root,
        train_images=x_all[tr_idx],
        train_labels=y_all[tr_idx].astype(np.int64),
        val_images=x_all[va_idx],
        val_labels=y_all[va_idx].astype(np.int64),
        test_images=x_test,
        test_labels=y_test.astype(np.int64),
        train_indices=tr_idx,
        val_indices=va_idx,
    )


def _validate(root: Path, x: np.ndarray, y: np.ndarray, which: str) -> None:
    """Counts, shapes, dtypes and label range of one split; :class:`DataError` naming what is off."""
    where = f"MNIST {which} files under {root / 'MNIST' / 'raw'}"
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(
            f"{where} hold images of shape {list(x.shape)} ({x.dtype}), expected uint8 [N,28,28]; delete them and download again"
        )
    if y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{where} hold {len(x)} images but {len(y)} labels; delete them and download again")
    if len(x) < 2:
        raise DataError(f"{where} hold {len(x)} images; need at least 2")
    if y.size and (int(y.min()) < 0 or int(y.max()) > 9):
        raise DataError(
            f"{where} hold labels {int(y.min())}..{int(y.max())}, expected 0..9; the files are corrupt"
        )


def write_idx(folder: str | os.PathLike, images: np.ndarray, labels: np.ndarray, train: bool) -> None:
    """Write images/labels as real IDX files in torchvision's layout (for tests and demos)."""
    raw = Path(folder) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prefix = "train" if train else "t10k"
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    n, h, w = images.shape
    with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(
            (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + h.to_bytes(4, "big") + w.to_bytes(4, "big")
        )
        f.write(images.tobytes())
    with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write((2049).to_bytes(4, "big") + n.to_bytes(4, "big"))
        f.write(labels.tobytes())
