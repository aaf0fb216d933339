"""A ``.pte`` is checked before ExecuTorch's runtime parses it in this process.

ExecuTorch's runtime aborts the whole process on some malformed programs (its log hook turns
bytes of the file that are not UTF-8 into a C++ exception nothing catches: SIGABRT, no output).
So a program is checked twice before this process loads it:

1. :func:`check_header`, in Python: the flatbuffer's root offset, the ``ETnn`` identifier and the
   extended header (``eh00``: program size, segment base and size) must fit inside the file;
2. :func:`probe`, for a bundle this process did not write: the program is loaded, its ``forward``
   method loaded and run once on zeros in a child process; a child killed by a signal, or one
   that fails, is one :class:`BundleError` line here.  A program that passed is remembered by
   its sha256 for the rest of the process.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading

from ..errors import BundleError

_IDENTIFIER = re.compile(rb"ET\d\d")
_EXT_MAGIC = b"eh00"
_EXT_MIN = 24  # magic, length, program size, segment base offset
PROBE_TIMEOUT_S = 600.0
_passed: set[str] = set()
_lock = threading.Lock()


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "little")


def check_header(data: bytes, key: str) -> None:
    """:class:`BundleError` unless ``data`` starts like an ExecuTorch program whose parts fit in it."""
    n = len(data)

    def bad(what: str) -> BundleError:
        return BundleError(
            f"{key} is not a valid ExecuTorch program ({what}); nothing was loaded. Re-export the bundle "
            "or restore it from a trusted copy"
        )

    if n < 8 + 32:
        raise bad(f"{n} bytes, too short for a program header")
    if not _IDENTIFIER.fullmatch(data[4:8]):
        raise bad(f"identifier {data[4:8]!r}, expected ETnn")
    if data[8:12] != _EXT_MAGIC:
        raise bad(f"extended header magic {data[8:12]!r}, expected {_EXT_MAGIC!r}")
    length = _u32(data, 12)
    if not _EXT_MIN <= length <= 64:
        raise bad(f"extended header length {length}, expected 24..64")
    program_size, base = _u64(data, 16), _u64(data, 24)
    seg_size = _u64(data, 32) if length >= 32 else 0
    if not 8 + length <= program_size <= n:
        raise bad(f"program size {program_size} outside the file's {n} bytes")
    root = _u32(data, 0)
    if not 8 + length <= root < program_size:
        raise bad(f"root table offset {root} outside the program's {program_size} bytes")
    if base and not program_size <= base <= n:
        raise bad(f"segment base offset {base} outside the file's {n} bytes")
    if seg_size and (not base or base + seg_size > n):
        raise bad(f"segments of {seg_size} bytes from offset {base} overrun the file's {n} bytes")


# Runs in the child: load the program and its forward method (exit 3 with the reason if that
# fails), then run it once on zeros; only a crash there matters.
_CHILD = r"""
import json, sys
try:
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime, Verification
    _unsafe_reset_threadpool(1)
    data = sys.stdin.buffer.read()
    feeds = [torch.zeros(shape, dtype=getattr(torch, dtype)) for shape, dtype in json.loads(sys.argv[1])]
    program = Runtime.get().load_program(data, verification=Verification.InternalConsistency)
    method = program.load_method("forward")
    if method is None:
        raise RuntimeError("the program has no forward method")
except BaseException as exc:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    sys.stdout.write(type(exc).__name__ + ": " + text.encode("ascii", "backslashreplace").decode())
    sys.stdout.flush()
    sys.exit(3)
try:
    method.execute(feeds)  # a crash here is what counts; an error is for the real run to report
except Exception:
    pass
"""


def probe(data: bytes, sha256: str, key: str, feeds: list) -> None:
    """Load and run ``data`` once in a child process (``feeds``: ``[(shape, dtype)]`` per input).

    :class:`BundleError` if the child dies by a signal, times out or fails; nothing otherwise.
    """
    with _lock:
        if sha256 in _passed:
            return
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps([[list(s), d] for s, d in feeds])],
            input=data,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the runtime's own log lines; a crash is reported below
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"{key}: loading and running the ExecuTorch program once took over {PROBE_TIMEOUT_S:.0f} s in a "
            "separate process, so it was not loaded here; re-export the bundle or restore it from a trusted copy"
        ) from None
    if done.returncode == 0:
        with _lock:
            _passed.add(sha256)
        return
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise BundleError(
            f"{key}: ExecuTorch crashed ({name}) loading this program in a separate process, so it was not "
            "loaded here: the .pte is corrupt or hostile; re-export the bundle or restore it from a trusted copy"
        )
    why = done.stdout.decode("ascii", "replace").strip()[:300] or f"exit status {done.returncode}"
    raise BundleError(
        f"ExecuTorch cannot load or run {key} ({why}); re-export the bundle or restore it from a trusted copy"
    )


__all__ = ["check_header", "probe"]
