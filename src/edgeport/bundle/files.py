"""Reading bundle files safely: every path component opened relative to its parent with
``O_NOFOLLOW``, the type and size checked on the open handle before a byte is read, and
the sha256 checked on the bytes read.  stdlib only.

Opening with ``O_NONBLOCK`` means a FIFO or device swapped in for a file cannot
block the reader; ``fstat`` on the handle then refuses anything but a regular
file.  The size is compared with the manifest's before reading, so a huge file
costs nothing but the error.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from ..errors import BundleError
from .paths import HINT, check_relpath

_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
)
_DIR_FLAGS = _FLAGS | getattr(os, "O_DIRECTORY", 0)
CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_dir(root: Path) -> int:
    """A handle on the bundle folder itself (not following a symlink)."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        raise BundleError(
            f"bundle {root} not found; export one first (edgeport export --out {root})"
        ) from None
    except NotADirectoryError:
        raise BundleError(f"bundle {root} is not a folder; pass the folder edgeport export wrote") from None
    except OSError as exc:
        if Path(root).is_symlink():
            raise BundleError(f"bundle {root} is a symlink; pass the real folder") from None
        raise BundleError(f"bundle {root} cannot be opened ({exc.strerror})") from None
    return fd


def _open_rel(root_fd: int, rel: str, root: Path) -> int:
    """Open ``rel`` below ``root_fd`` one component at a time, never following a symlink."""
    parts = rel.split("/")
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                nfd = os.open(part, _FLAGS if last else _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise BundleError(f"{rel} is missing from bundle {root}; {HINT}") from None
            except OSError as exc:
                why = (
                    "is a symlink (or lies under one)"
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                    else f"cannot be read ({exc.strerror})"
                )
                raise BundleError(
                    f"{rel} in bundle {root} {why}; bundles may hold only plain files. {HINT}"
                ) from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_entry(root_fd: int, root: Path, rel: str, size: int) -> int:
    """A read handle on ``rel``; :class:`BundleError` unless it is a regular file of ``size`` bytes."""
    check_relpath("file", rel)
    fd = _open_rel(root_fd, rel, root)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(
                f"{rel} in bundle {root} is not a regular file (a FIFO, device or folder); {HINT}"
            )
        if st.st_size != size:
            raise BundleError(
                f"{rel} in bundle {root} is {st.st_size} bytes, but its manifest says {size}: it is corrupt "
                f"or was modified; {HINT}"
            )
        os.set_blocking(fd, True)
        return fd
    except OSError as exc:
        os.close(fd)
        raise BundleError(f"{rel} in bundle {root} cannot be read ({exc.strerror}); {HINT}") from None
    except BaseException:
        os.close(fd)
        raise


def read_fd(fd: int, root: Path, rel: str, size: int, sha256: str | None) -> bytes:
    """All ``size`` bytes of the open file ``fd`` from offset 0 (``pread``: handles may be shared
    between threads), checked against ``sha256``."""
    try:
        if os.fstat(fd).st_size != size:
            raise BundleError(
                f"{rel} in bundle {root} changed size since it was opened (manifest: {size} bytes); {HINT}"
            )
        buf = bytearray()
        while len(buf) <= size:
            block = os.pread(fd, min(CHUNK, size + 1 - len(buf)), len(buf))
            if not block:
                break
            buf += block
    except OSError as exc:
        raise BundleError(f"{rel} in bundle {root} cannot be read ({exc.strerror}); {HINT}") from None
    if len(buf) != size:
        raise BundleError(
            f"{rel} in bundle {root} changed size while it was read ({len(buf)} bytes, expected {size}); {HINT}"
        )
    data = bytes(buf)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError(
            f"{rel} in bundle {root} does not match its manifest hash (expected sha256 "
            f"{sha256[:16]}..., {size} bytes): it is corrupt or was modified; {HINT}"
        )
    return data


def read_entry(root_fd: int, root: Path, rel: str, size: int, sha256: str | None) -> bytes:
    """The bytes of ``rel``; :class:`BundleError` unless it is a regular file of ``size`` bytes with ``sha256``."""
    fd = open_entry(root_fd, root, rel, size)
    try:
        return read_fd(fd, root, rel, size, sha256)
    finally:
        os.close(fd)


def read_small(root_fd: int, root: Path, rel: str, limit: int) -> bytes:
    """A file of at most ``limit`` bytes (the manifest), checked on the open handle."""
    fd = _open_rel(root_fd, rel, root)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{rel} in bundle {root} is not a regular file; {HINT}")
        if st.st_size > limit:
            raise BundleError(
                f"{rel} in bundle {root} is {st.st_size} bytes, more than the {limit} allowed; {HINT}"
            )
        os.set_blocking(fd, True)
        data = b""
        while len(data) <= limit:
            block = os.read(fd, limit + 1 - len(data))
            if not block:
                break
            data += block
        if len(data) > limit:
            raise BundleError(f"{rel} in bundle {root} grew past {limit} bytes while read; {HINT}")
        return data
    except OSError as exc:
        raise BundleError(f"{rel} in bundle {root} cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[str, int]:
    """(sha256, size) of a file being written into a staging folder."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n
