"""Listing data folders and resolving the files an annotation names, never through a directory twice.

A directory link that points back up the tree (``a/loop -> a``) would make a
naive walk list every file again at each level, and two such links make it
run for ever.  :func:`walk_files` follows links (as torchvision's
ImageFolder does) but enters each real directory once, identified by its
device and inode; :func:`resolve_named` refuses a file name whose path passes
through one directory twice.  Order is torchvision's: directories by path,
files by name.  stdlib only.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path

from ..errors import DataError

MAX_DEPTH = 64  # path components in a file name an annotation gives


def _key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows links: the real directory
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk_files(root: Path, suffixes: tuple[str, ...], where: str) -> list[Path]:
    """Regular files under ``root`` (recursively, links followed) whose lower-cased name ends in one of
    ``suffixes``; a directory reached by a second path (a link loop, two links to one folder) is skipped."""
    seen: set[tuple[int, int]] = set()
    heap = [str(root)]
    listed: list[tuple[str, list[str]]] = []
    while heap:
        d = heapq.heappop(heap)  # smallest path first: the first path to a directory wins, deterministically
        key = _key(d)
        if key is None or key in seen:
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(d))
        except OSError as exc:
            raise DataError(
                f"{where}: cannot list {d} ({exc.strerror or exc}); check its permissions"
            ) from None
        names = []
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=True):
                    heapq.heappush(heap, e.path)
                elif e.is_file(follow_symlinks=True) and e.name.lower().endswith(suffixes):
                    names.append(e.name)
            except OSError:  # a link loop on a single entry (ELOOP): not a file, not a folder
                continue
        listed.append((d, sorted(names)))
    listed.sort()
    return [Path(d) / n for d, names in listed for n in names]


def class_folders(root: Path) -> list[str]:
    """Sorted visible subfolder names of ``root`` (links to folders count)."""
    out = []
    for e in os.scandir(root):
        try:
            if e.is_dir(follow_symlinks=True) and not e.name.startswith("."):
                out.append(e.name)
        except OSError:
            continue
    return sorted(out)


def resolve_named(bases: list[Path], name: str, where: str) -> Path | None:
    """The file ``name`` (a relative path an annotation gives) under the first base that has it.

    ``name`` must be relative without ``..``; each directory on its way is entered once at most, so a
    name written through a link loop (``loop/loop/x.png``) is refused rather than read as another file.
    None when no base holds it.
    """
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or len(parts) > MAX_DEPTH:
        raise DataError(
            f"{where}: file name {name[:120]!r} must be a relative path inside the annotations' folder "
            "(no '..', not absolute)"
        )
    for base in bases:
        seen = {_key(str(base))}
        cur = base
        ok = True
        for part in parts[:-1]:
            cur = cur / part
            key = _key(str(cur))
            if key is None:
                ok = False
                break
            if key in seen:
                raise DataError(
                    f"{where}: file name {name[:120]!r} passes through the folder {part!r} twice (a link "
                    "loop); name each image by its real path"
                )
            seen.add(key)
        path = cur / parts[-1]
        if ok and path.is_file():
            return path
    return None
