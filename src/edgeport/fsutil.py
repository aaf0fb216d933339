"""Writing without losing what the user had: atomic files and folders, and the --force rule.

- Every result file is written to a temporary file beside it, fsynced and
  renamed over the target, so a full disk or a kill never leaves a truncated
  result where a good one was.
- Every folder edgeport writes (bundle, run, pipeline run) is assembled in a
  staging folder beside the target and swapped in with one rename.  Staging
  folders carry their owner's pid, so the next writer can tell a killed
  writer's leftovers (removed) from a live one's (kept).
- ``--force`` replaces only a folder edgeport made for the same purpose (it
  carries a ``.edgeport`` marker, or is recognisably one from an older
  release) or an empty folder.  Anything else is refused.

stdlib only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, WriteError

MARKER = ".edgeport"
OWNER_FILE = ".edgeport-export.pid"  # marks a staging folder as in use by a live process
KINDS = ("bundle", "run", "pipeline")
# The kinds of folder each kind of writer may replace with --force.
REPLACEABLE = {"bundle": ("bundle",), "run": ("run", "pipeline"), "pipeline": ("pipeline", "run")}


# --------------------------------------------------------------------------- folder kinds


def write_marker(folder: Path, kind: str) -> None:
    (folder / MARKER).write_text(json.dumps({"kind": kind, "tool": "edgeport"}) + "\n")


def folder_kind(folder: Path) -> str | None:
    """What edgeport made ``folder`` for (bundle, run, pipeline), or None if it did not make it."""
    marker = folder / MARKER
    if marker.is_file() and not marker.is_symlink():
        try:
            kind = json.loads(marker.read_text()[:1000]).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind in KINDS:
            return kind
    # Folders written by edgeport 0.1, before the marker existed.
    if (folder / "pipeline.json").is_file() and (folder / "train.json").is_file():
        return "pipeline"
    if _json_has(folder / "manifest.json", ("schema_version", "artifacts")):
        return "bundle"
    if _json_has(folder / "train.json", ("model",)) and (folder / "model.safetensors").is_file():
        return "run"
    return None


def _json_has(path: Path, keys: Iterable[str]) -> bool:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 20:
            return False
        d = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(d, dict) and all(k in d for k in keys)


def prepare_target(target: Path, force: bool, kind: str) -> None:
    """Check that ``target`` may be written (and replaced, with ``force``) before any work starts."""
    what = {"bundle": "bundle", "run": "run folder", "pipeline": "run folder"}[kind]
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{what} {target} exists and is not a folder; choose another path")
    if target.exists() and any(target.iterdir()):
        if not force:
            raise ConfigError(
                f"{what} {target} already exists; pass --force to replace it or choose another path"
            )
        found = folder_kind(target)
        if found not in REPLACEABLE[kind]:
            seen = f"a {found} folder" if found else "a folder edgeport did not make"
            raise ConfigError(
                f"--force replaces only a {what} made by edgeport or an empty folder, and {target} is {seen}; "
                "choose another path (nothing was changed)"
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
    probe_writable(parent, prefix=f".{target.name}.tmp-probe-")


def probe_writable(folder: Path, prefix: str = ".edgeport-probe-") -> None:
    """Create and remove a temporary folder in ``folder``; :class:`ConfigError` if that fails.

    ``os.access`` says yes to root everywhere and knows nothing of read-only
    mounts or pseudo file systems such as /proc, so only a real write tells.
    """
    try:
        probe = tempfile.mkdtemp(prefix=prefix, dir=folder)
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {folder} ({exc.strerror or exc}); choose a writable location"
        ) from None
    try:
        os.rmdir(probe)
    except FileNotFoundError:  # a concurrent writer's leftover cleaning got there first
        pass


def check_inputs(target: Path, inputs: dict, *, replaced: bool, what: str) -> None:
    """Before anything is written: every input (``{flag: path or None}``) exists, and none lies
    inside ``target`` when ``replaced`` (``--force`` would delete it with the old folder).

    Inputs are read before outputs are replaced, and an input is never deleted: one inside the
    folder being replaced is refused, with nothing changed.
    """
    t = _real(target) if replaced and (target.exists() or target.is_symlink()) else None
    for flag, p in inputs.items():
        if p is None:
            continue
        path = Path(p).expanduser()
        if not path.exists():
            raise ConfigError(f"{flag} {p} not found; check the path (nothing was changed)")
        rp = _real(path)
        if t is not None and rp is not None and (rp == t or t in rp.parents):
            raise ConfigError(
                f"{flag} {p} lies inside {target}, which would be replaced by the new {what}, so it would "
                f"be lost; move it out of {target} or choose another --out (nothing was changed)"
            )


def _real(path: Path) -> Path | None:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- files


def check_not_inside(paths: Iterable[str | os.PathLike], folder, what: str = "bundle") -> None:
    """Refuse an output that lies inside ``folder`` (the bundle being read): never write into it."""
    root = _real(Path(folder)) if folder is not None else None
    if root is None:
        return
    for p in map(Path, paths):
        rp = _real(p.absolute())
        if rp is not None and (rp == root or root in rp.parents):
            raise ConfigError(
                f"{p} lies inside the {what} {folder} that this command reads; edgeport never writes into "
                "it: choose an output path outside it"
            )


def check_new_files(paths: Iterable[str | os.PathLike], force: bool, *, protect=None) -> None:
    """Refuse (before any work) output files that exist without ``force``, cannot be written, or lie
    inside ``protect`` (the bundle the command reads)."""
    paths = [Path(p) for p in paths]
    check_not_inside(paths, protect)
    for p in paths:
        if p.is_dir():
            raise ConfigError(f"{p} is a folder; give a file name")
        if (p.exists() or p.is_symlink()) and not force:
            raise ConfigError(f"{p} already exists; pass --force to overwrite it")
        parent = p.absolute().parent
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{parent} is a file, not a folder; choose another path")
        if not parent.is_dir():
            raise ConfigError(f"folder {parent} does not exist; create it or choose another path")
        try:  # os.access says yes to root everywhere, and knows nothing of read-only mounts or /proc
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as exc:
            raise ConfigError(
                f"cannot write to {parent} ({exc.strerror or exc}); choose another path"
            ) from None


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path``.

    On any error the target is untouched and the temporary file is gone.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, default=str, allow_nan=True) + "\n")


# --------------------------------------------------------------------------- staging folders


def fsync_tree(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
    as ``.NAME.old-*``, which :func:`clean_leftovers` restores.
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


def make_staging(target: Path) -> Path:
    """A fresh temporary folder beside ``target`` (same filesystem, so rename is atomic).

    Its name carries the owner's pid (``.NAME.tmp-<pid>-<random>``), so a
    cleaner can tell a live writer's folder from a dead one's at any moment.
    """
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    except OSError as exc:
        raise ConfigError(
            f"cannot write to {target.parent}: {exc.strerror}; choose a writable location"
        ) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _pid_in_name(name: str) -> int | None:
    m = re.search(r"\.tmp-(\d+)-[^-]*$", name)
    return int(m.group(1)) if m else None


def clean_leftovers(target: Path) -> list[Path]:
    """Remove staging folders of dead writers beside ``target``; restore a folder a killed commit left aside."""
    parent = target.parent if str(target.parent) else Path(".")
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    olds = _named(parent, target.name, r"old-[A-Za-z0-9_-]+")
    if not target.exists() and len(olds) == 1 and folder_kind(olds[0]) is not None:
        os.rename(olds[0], target)  # killed between the two renames of atomic_commit
        olds = []
    for d in [*_named(parent, target.name, r"tmp-[A-Za-z0-9_-]+"), *olds]:
        try:
            pid = int((d / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            pid = _pid_in_name(d.name)
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue  # another writer is filling it right now
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _named(parent: Path, name: str, tail: str) -> list[Path]:
    """Entries of ``parent`` named ``.NAME.TAIL`` (``tail`` a regex of what :mod:`tempfile` adds), with
    ``name`` taken literally: ``[`` or ``*`` in it is no pattern, and another target's leftovers
    (``.NAME.tmp-1.tmp-...``) do not match."""
    pattern = re.compile(rf"\.{re.escape(name)}\.{tail}")
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    return sorted(parent / n for n in names if pattern.fullmatch(n) and not os.path.islink(parent / n))


@contextmanager
def staging_dir(target: Path, kind: str):
    """Yield a staging folder; on success mark it as ``kind`` and swap it in for ``target``.

    Any error (a full disk, a read-only folder, an exception from the caller)
    removes the staging folder and leaves ``target`` as it was.
    """
    staging = make_staging(target)
    try:
        try:
            (staging / OWNER_FILE).write_text(str(os.getpid()))
            yield staging
            write_marker(staging, kind)
            (staging / OWNER_FILE).unlink()
            atomic_commit(staging, target)
        except OSError as exc:  # full disk, read-only folder, ...
            raise WriteError(
                f"cannot write {target}: {exc.strerror or exc}; the previous one (if any) is kept, "
                "free some space or choose a writable --out"
            ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
