"""Bounded, lazy ``.npz`` reading (numpy + stdlib), for ``npz:`` data and a bundle's golden I/O.

``np.load`` trusts a member's header and inflates the whole member at first
access: a 4 MB file of zeros can declare gigabytes, and a bad zip, a CRC
error, an object array or a string array each surface as a different
exception.  :class:`NpzReader` instead

- reads every member's ``.npy`` header first (a few hundred bytes) and accepts
  plain numeric arrays only (bool, integers, floats; at least one dimension),
  whose declared size agrees with the zip directory's;
- caps the total decompressed size before any data is read:
  :data:`DEFAULT_MAX_BYTES` (8 GiB), or ``$EDGEPORT_MAX_NPZ_BYTES``;
- checks every member's CRC once, streaming (memory bounded by one chunk);
- reads rows on demand: a stored member by seeking, a compressed one by
  inflating forward (restarting only when asked for an earlier row), so memory
  is bounded by the rows asked for, not by the file.

Every problem is one error of the class the caller names, saying what to do.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError

MAX_NPZ_ENV = "EDGEPORT_MAX_NPZ_BYTES"
DEFAULT_MAX_BYTES = 8 << 30
MAX_MEMBERS = 1024
CHUNK = 1 << 20
FORTRAN_WHOLE_MAX = 256 << 20  # a Fortran-ordered member is read whole (its rows are not contiguous)
KINDS = "biuf"
_FIX = "re-save it with numpy.savez(FILE, name=array, ...) from plain numeric arrays"


def max_bytes(override: int | None = None) -> int:
    """The decompressed-size cap: ``override``, else ``$EDGEPORT_MAX_NPZ_BYTES``, else the default."""
    value = override
    if value is None and os.environ.get(MAX_NPZ_ENV):
        try:
            value = int(os.environ[MAX_NPZ_ENV])
        except ValueError:
            raise ConfigError(
                f"{MAX_NPZ_ENV}={os.environ[MAX_NPZ_ENV][:40]!r} is not a whole number"
            ) from None
    value = DEFAULT_MAX_BYTES if value is None else value
    if not 1 <= value <= 1 << 40:
        raise ConfigError(f"the npz size cap must be between 1 byte and 1 TiB, got {value}")
    return value


@dataclass(frozen=True)
class Member:
    name: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    header_len: int  # bytes of the .npy header before the data

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=object)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes


class NpzReader:
    """The members of one ``.npz`` (a path, or bytes already verified), checked and read lazily."""

    def __init__(
        self, source, *, where: str, error=DataError, cap: int | None = None, fix: str = _FIX
    ) -> None:
        self.where, self.error, self.fix = where, error, fix
        self._lock = threading.RLock()
        self._zf = None
        self._raw = None
        self._cursors: dict[str, list] = {}
        self._whole: dict[str, np.ndarray] = {}
        self.source = source if isinstance(source, (bytes, bytearray)) else Path(source)
        try:
            self._open()
            self.members = self._scan(max_bytes(cap))
            self._check_crcs()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
            self.close()
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise error(f"{where} is not a readable .npz file ({first}); {fix}") from None
        except BaseException:
            self.close()
            raise

    # -- opening and checking ------------------------------------------------------------
    def _open(self) -> None:
        if isinstance(self.source, (bytes, bytearray)):
            self._raw = io.BytesIO(self.source)
        else:
            self._raw = open(self.source, "rb")  # noqa: SIM115 - closed by close()
        self._zf = zipfile.ZipFile(self._raw)

    def _fail(self, what: str) -> Exception:
        return self.error(f"{self.where}: {what}")

    def _scan(self, cap: int) -> dict[str, Member]:
        infos = self._zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self._fail(f"holds {len(infos)} members, at most {MAX_MEMBERS}; {self.fix}")
        members, total = {}, 0
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                raise self._fail(f"holds {info.filename[:60]!r}, which is not an array (.npy); {self.fix}")
            m = self._header(info)
            total += m.nbytes
            if total > cap:
                raise self._fail(
                    f"declares {total:,} bytes of arrays once decompressed, above the cap of {cap:,}; split "
                    f"the file, or raise the cap with {MAX_NPZ_ENV}"
                )
            members[m.name] = m
        return members

    def _header(self, info: zipfile.ZipInfo) -> Member:
        name = info.filename[: -len(".npy")]
        with self._zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            header_len = f.tell()
        what = f"array {name[:60]!r}"
        if dtype.hasobject:
            raise self._fail(f"{what} is an object array, which edgeport never unpickles; {self.fix}")
        if dtype.kind not in KINDS or dtype.fields is not None:
            raise self._fail(
                f"{what} has dtype {dtype} ({'text' if dtype.kind in 'US' else 'not a number'}); expected bool, "
                f"integers or floats - {self.fix}"
            )
        if len(shape) == 0:
            raise self._fail(f"{what} is 0-d (a single value); expected one row per sample - {self.fix}")
        m = Member(
            name, info, tuple(int(s) for s in shape), dtype, bool(fortran and len(shape) > 1), header_len
        )
        if info.file_size != header_len + m.nbytes:
            raise self._fail(
                f"{what} declares shape {list(m.shape)} {dtype} ({m.nbytes:,} bytes) but the zip holds "
                f"{info.file_size - header_len:,}; the file is truncated or was edited - {self.fix}"
            )
        return m

    def _check_crcs(self) -> None:
        for m in self.members.values():
            with self._zf.open(m.info) as f:  # zipfile raises BadZipFile on a CRC mismatch at the end
                while f.read(CHUNK):
                    pass

    # -- reading -------------------------------------------------------------------------
    def read(self, name: str) -> np.ndarray:
        """A whole member."""
        m = self.members[name]
        return self.rows(name, np.arange(m.shape[0]))

    def rows(self, name: str, positions) -> np.ndarray:
        """``member[positions]``, reading only those rows."""
        m = self.members[name]
        pos = np.asarray(positions, np.int64).reshape(-1)
        if len(pos) and (pos.min() < 0 or pos.max() >= m.shape[0]):
            raise IndexError(f"row {int(pos.max())} of {name!r} (it has {m.shape[0]})")
        with self._lock:
            try:
                if m.fortran:
                    out = self._fortran(m)[pos]
                    return out if m.dtype.isnative else out.astype(m.dtype.newbyteorder("="))
                order = np.unique(pos)
                buf = self._read_sorted(m, order)
                arr = np.frombuffer(buf, m.dtype).reshape((len(order),) + m.shape[1:])
                out = arr[np.searchsorted(order, pos)]
                return out if m.dtype.isnative else out.astype(m.dtype.newbyteorder("="))
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error) as exc:
                first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
                raise self._fail(f"array {name!r} cannot be read ({first}); {self.fix}") from None

    def _fortran(self, m: Member) -> np.ndarray:
        if m.name not in self._whole:
            if m.nbytes > FORTRAN_WHOLE_MAX:
                raise self._fail(
                    f"array {m.name!r} is stored in Fortran order ({m.nbytes:,} bytes); save it C-ordered "
                    "(numpy.ascontiguousarray) so its rows can be read one batch at a time"
                )
            data = self._span(m, 0, m.nbytes)
            self._whole[m.name] = np.frombuffer(data, m.dtype).reshape(m.shape[::-1]).T
        return self._whole[m.name]

    def _read_sorted(self, m: Member, order: np.ndarray) -> bytes:
        """The rows at the sorted positions ``order``, contiguous runs read at once."""
        rb, parts = m.row_bytes, []
        if not len(order) or rb == 0:
            return b""
        breaks = np.flatnonzero(np.diff(order) != 1) + 1
        for run in np.split(order, breaks):
            parts.append(self._span(m, int(run[0]) * rb, len(run) * rb))
        return b"".join(parts)

    def _span(self, m: Member, offset: int, size: int) -> bytes:
        """``size`` bytes of the member's array data from ``offset``."""
        start = m.header_len + offset
        if m.info.compress_type == zipfile.ZIP_STORED:
            self._raw.seek(self._data_start(m.info) + start)
            data = self._raw.read(size)
        else:
            data = self._inflate(m, start, size)
        if len(data) != size:
            raise EOFError(f"the file ends inside array {m.name!r}")
        return data

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        self._raw.seek(info.header_offset)
        head = self._raw.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename[:60]!r}")
        n, extra = struct.unpack("<HH", head[26:30])
        return info.header_offset + 30 + n + extra

    def _inflate(self, m: Member, start: int, size: int) -> bytes:
        cur = self._cursors.get(m.name)
        if cur is None or cur[1] > start:  # none yet, or asked for an earlier row: start over
            if cur is not None:
                cur[0].close()
            cur = self._cursors[m.name] = [self._zf.open(m.info), 0]
        f = cur[0]
        while cur[1] < start:
            skipped = len(f.read(min(CHUNK, start - cur[1])))
            if not skipped:
                break
            cur[1] += skipped
        data = f.read(size)
        cur[1] += len(data)
        return data

    def close(self) -> None:
        for cur in self._cursors.values():
            cur[0].close()
        self._cursors.clear()
        self._whole.clear()
        if self._zf is not None:
            self._zf.close()
        if self._raw is not None:
            self._raw.close()
        self._zf = self._raw = None

    def __del__(self) -> None:  # a source that is dropped without close() leaves no open file behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_all(data: bytes, *, where: str, error, cap: int, fix: str = _FIX) -> dict[str, np.ndarray]:
    """Every array of an in-memory ``.npz`` (a bundle's golden file), through the same checks."""
    with NpzReader(data, where=where, error=error, cap=cap, fix=fix) as z:
        return {name: z.read(name) for name in z.members}


__all__ = ["DEFAULT_MAX_BYTES", "MAX_NPZ_ENV", "NpzReader", "load_all", "max_bytes"]
