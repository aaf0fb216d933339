"""Checkpoints: weights in safetensors (no unpickling) plus ``train.json``.

A run folder holds ``model.safetensors`` and ``train.json``.  Loading never
unpickles anything, so a hostile checkpoint cannot run code.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import BundleError, ConfigError

WEIGHTS_FILE = "model.safetensors"
TRAIN_FILE = "train.json"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_tree(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prepare_target(target: Path, force: bool, what: str = "output folder") -> None:
    """Refuse to replace an existing, non-empty ``target`` unless ``force``."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{what} {target} exists and is not a folder; choose another path")
    if target.exists() and any(target.iterdir()) and not force:
        raise ConfigError(
            f"{what} {target} already exists; pass --force to replace it or choose another path"
        )
    parent = target.parent if str(target.parent) else Path(".")
    for above in (parent, *parent.parents):
        if above.exists() or above.is_symlink():
            if not above.is_dir():
                raise ConfigError(f"{above} is a file, not a folder; choose another path for the {what}")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {parent}: {exc.strerror}; choose a writable location") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write to {parent} (permission denied); choose a writable location")
    probe_writable(parent, prefix=f".{target.name}.tmp-probe-")


def probe_writable(folder: Path, prefix: str = ".edgeport-probe-") -> None:
    """Create and remove a temporary folder in ``folder``; :class:`ConfigError` if that fails.

    ``os.access`` says yes to root everywhere and knows nothing of read-only
    mounts or pseudo file systems such as /proc, so only a real write tells.
    (The ``.NAME.tmp-`` prefix lets the next export clean it up if we are killed here.)
    """
    try:
        probe = tempfile.mkdtemp(prefix=prefix, dir=folder)
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {folder} ({exc.strerror or exc}); choose a writable location"
        ) from None
    try:
        os.rmdir(probe)
    except FileNotFoundError:  # a concurrent export's leftover cleaning got there first
        pass


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step with renameat2(RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # file system or kernel without exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def atomic_commit(tmp: Path, target: Path) -> None:
    """fsync ``tmp`` and rename it to ``target``, replacing an old folder atomically.

    On Linux an existing ``target`` is swapped with ``tmp`` in one
    renameat2(RENAME_EXCHANGE) call, so at every instant ``target`` names a
    complete folder (old or new), even if the process is killed.  Elsewhere the
    old folder is renamed aside first; a kill between the two renames leaves it
    as ``.NAME.old-*``, which ``edgeport.export.staging.clean_leftovers`` restores.
    """
    fsync_tree(tmp)
    if target.is_dir() and not target.is_symlink() and _exchange(tmp, target):
        _fsync_dir(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the old folder
        return
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def make_staging(target: Path) -> Path:
    """A fresh temporary folder beside ``target`` (same filesystem, so rename is atomic).

    Its name carries the owner's pid (``.NAME.tmp-<pid>-<random>``), so a
    cleaner can tell a live export's folder from a dead one's at any moment.
    """
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {target.parent}: {exc.strerror}; choose a writable location"
        ) from None


def save_weights(path: Path, state_dict: dict, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata=metadata)


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
        raise BundleError(
            f"checkpoint {path} is corrupt or not a safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            "retrain or restore it"
        ) from None
    return tensors, meta


def read_train_json(run_dir: Path) -> dict:
    path = run_dir / TRAIN_FILE
    if not path.is_file():
        raise BundleError(f"{path} not found; is {run_dir} a run folder written by `edgeport train`?")
    try:
        info = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); retrain or restore it") from None
    if not isinstance(info, dict) or "model" not in info:
        raise BundleError(f"{path} has no 'model' field; retrain or restore it")
    return info


def load_run(run_dir: str | os.PathLike):
    """``(model in eval mode, train.json dict)`` from a run folder."""
    from .models import build_model

    run_dir = Path(run_dir)
    info = read_train_json(run_dir)
    tensors, _meta = load_weights(run_dir / WEIGHTS_FILE)
    model = build_model(info["model"])
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(f"{run_dir / WEIGHTS_FILE} does not fit model {info['model']!r}: {first}") from None
    model.eval()
    return model, info
