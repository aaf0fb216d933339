"""Staging folders for bundle writes: written beside the target, committed by rename.

A staging folder holds an owner file with the writer's pid until it is
committed, so the next export can tell a killed export's leftovers (removed)
from a concurrent one (kept).
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from .. import checkpoint as ckpt
from ..errors import BundleError
from .bundle import MANIFEST_FILE

OWNER_FILE = ".edgeport-export.pid"  # marks a staging folder as in use by a live process


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_leftovers(target: Path) -> list[Path]:
    """Remove staging folders of dead exports beside ``target``; restore a bundle a killed commit left aside."""
    parent = target.parent if str(target.parent) else Path(".")
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    olds = sorted(parent.glob(f".{target.name}.old-*"))
    if not target.exists() and len(olds) == 1 and (olds[0] / MANIFEST_FILE).is_file():
        os.rename(olds[0], target)  # killed between the two renames of atomic_commit
        olds = []
    for d in [*parent.glob(f".{target.name}.tmp-*"), *olds]:
        try:
            pid = int((d / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            pid = _pid_in_name(d.name)
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue  # another export is writing it right now
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _pid_in_name(name: str) -> int | None:
    """The owner pid in ``.NAME.tmp-<pid>-<random>`` (see checkpoint.make_staging)."""
    m = re.search(r"\.tmp-(\d+)-[^-]*$", name)
    return int(m.group(1)) if m else None


@contextmanager
def staging_dir(target: Path):
    staging = ckpt.make_staging(target)
    try:
        try:
            (staging / OWNER_FILE).write_text(str(os.getpid()))
            yield staging
            (staging / OWNER_FILE).unlink()
            ckpt.atomic_commit(staging, target)
        except OSError as exc:  # full disk, read-only folder, ...
            raise BundleError(
                f"cannot write bundle {target}: {exc.strerror or exc}; the previous bundle (if any) is kept, "
                "free some space or choose a writable --out"
            ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
