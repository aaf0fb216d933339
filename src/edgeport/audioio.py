"""Torch-free, bounded WAV decoding and resampling (numpy + stdlib), for ``wavfolder:`` and ``predict``.

- **Format.** RIFF/WAVE, 16-bit PCM (format tag 1, or WAVE_FORMAT_EXTENSIBLE
  with the PCM subformat), mono or stereo (mixed down to mono by the mean),
  any sample rate.  Anything else (8-bit, 24-bit, float, three or more
  channels, a data chunk that runs past the end of the file) is one
  :class:`~edgeport.errors.DataError` naming the file and saying what to do.
- **Bounded.** Only the chunk headers are read to open a file; samples are
  read for the window a clip needs (:func:`read_window`), so a one-hour
  recording costs one second of memory when the steps keep one second.
- **Resampling.** Band-limited: a Hann-windowed sinc (:data:`ZEROS` zero
  crossings each side, cutoff :data:`ROLLOFF` of the lower Nyquist), samples
  outside the signal taken as zeros.  The output of ``n`` input samples is
  ``ceil(n * dst / src)`` samples long.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

ZEROS = 16  # zero crossings of the sinc kernel on each side
ROLLOFF = 0.99
MAX_CHUNKS = 1024  # RIFF chunks scanned before the data chunk
MIN_RATE, MAX_RATE = 1000, 384_000
_PCM_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FIX = "re-save it as 16-bit PCM WAV, mono or stereo (e.g. sox in.wav -b 16 out.wav)"


@dataclass(frozen=True)
class WavInfo:
    path: Path
    channels: int
    rate: int
    frames: int
    data_offset: int


def _fmt(path: Path, body: bytes) -> tuple[int, int, int]:
    """(channels, rate, bits) of a ``fmt `` chunk, refusing all but 16-bit PCM mono/stereo."""
    if len(body) < 16:
        raise DataError(f"{path}: the WAV format chunk is too short; {_FIX}")
    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 40 and body[24:26] == b"\x01\x00" and body[26:40] == _PCM_GUID_TAIL:
        tag = 1
    if tag != 1:
        kind = {3: "floating-point", 6: "A-law", 7: "mu-law"}.get(tag, f"format {tag}")
        raise DataError(f"{path} is a {kind} WAV, not 16-bit PCM; {_FIX}")
    if bits != 16:
        raise DataError(f"{path} holds {bits}-bit samples; edgeport reads 16-bit PCM - {_FIX}")
    if channels not in (1, 2):
        raise DataError(f"{path} has {channels} channels; expected mono or stereo - {_FIX}")
    if not MIN_RATE <= rate <= MAX_RATE or align != 2 * channels:
        raise DataError(f"{path}: sample rate {rate} Hz or block size {align} is not valid; {_FIX}")
    return channels, rate, bits


def wav_info(path: str | os.PathLike) -> WavInfo:
    """The header of a WAV file: channels, rate, frames and where its samples start."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise DataError(f"{path} is not a WAV file (no RIFF/WAVE header); {_FIX}")
            fmt = data = None
            for _ in range(MAX_CHUNKS):
                chunk = f.read(8)
                if len(chunk) < 8:
                    break
                cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                body = f.tell()
                if cid == b"fmt ":
                    fmt = _fmt(path, f.read(min(n, 64)))
                elif cid == b"data":
                    data = (body, n)
                if fmt and data:
                    break
                f.seek(body + n + (n & 1))  # chunks are padded to an even size
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc}); check the path") from None
    if fmt is None or data is None:
        raise DataError(
            f"{path} is a corrupt WAV: it lacks a {'format' if fmt is None else 'data'} chunk; {_FIX}"
        )
    channels, rate, _ = fmt
    offset, n = data
    if offset + n > size:
        raise DataError(
            f"{path} is truncated: its data chunk declares {n:,} bytes, the file holds {size - offset:,}; {_FIX}"
        )
    frames = n // (2 * channels)
    if frames < 1:
        raise DataError(f"{path} holds no samples; pass a WAV with sound in it")
    return WavInfo(path, channels, rate, frames, offset)


def read_frames(info: WavInfo, start: int, count: int) -> np.ndarray:
    """Mono float32 samples ``[start, start + count)`` in [-1, 1); zeros outside the recording."""
    out = np.zeros(count, np.float32)
    lo, hi = max(0, start), min(info.frames, start + count)
    if hi <= lo:
        return out
    block = 2 * info.channels
    try:
        with open(info.path, "rb") as f:
            f.seek(info.data_offset + lo * block)
            raw = f.read((hi - lo) * block)
    except OSError as exc:
        raise DataError(f"{info.path} cannot be read ({exc.strerror or exc})") from None
    if len(raw) != (hi - lo) * block:
        raise DataError(f"{info.path} was truncated while it was read; {_FIX}")
    x = np.frombuffer(raw, "<i2").astype(np.float32).reshape(-1, info.channels).mean(axis=1)
    out[lo - start : hi - start] = x / 32768.0
    return out


def resampled_length(n: int, src: int, dst: int) -> int:
    return n if src == dst else math.ceil(n * dst / src)


def _kernel(tau: np.ndarray, c: float, half: float) -> np.ndarray:
    w = np.where(np.abs(tau) <= half, 0.5 * (1.0 + np.cos(np.pi * tau / half)), 0.0)
    return c * np.sinc(c * tau) * w


def resample_window(read, src: int, dst: int, start: int, count: int, chunk: int = 4096) -> np.ndarray:
    """Output samples ``[start, start + count)`` of a signal resampled from ``src`` to ``dst`` Hz.

    ``read(first, n)`` returns input samples ``[first, first + n)`` (zeros outside the signal); only the
    input around the window is read.  Band-limited by a Hann-windowed sinc.
    """
    if src == dst:
        return read(start, count)
    c = ROLLOFF * min(1.0, dst / src)  # cutoff in cycles per input sample x 2
    half = ZEROS / c  # kernel half-width in input samples
    t = (start + np.arange(count, dtype=np.float64)) * (src / dst)  # output times in input samples
    taps = int(math.ceil(2 * half)) + 2  # input samples under the kernel, from floor(t - half)
    first = math.floor(t[0] - half) if count else 0
    last = math.floor(t[-1] - half) + taps if count else 0  # one past the last input sample used
    x = read(first, last - first).astype(np.float64)
    out = np.empty(count, np.float32)
    for i in range(0, count, chunk):
        tt = t[i : i + chunk]
        base = np.floor(tt - half).astype(np.int64)
        k = base[:, None] + np.arange(taps)[None, :]
        out[i : i + chunk] = (x[k - first] * _kernel(tt[:, None] - k, c, half)).sum(axis=1)
    return out


def read_window(path, rate: int, start: int, count: int) -> np.ndarray:
    """Samples ``[start, start + count)`` of ``path`` resampled to ``rate`` Hz (mono float32), zeros outside
    the resampled recording, reading only the part of the file the window needs."""
    info = wav_info(path)
    n = resampled_length(info.frames, info.rate, rate)
    out = resample_window(lambda a, k: read_frames(info, a, k), info.rate, rate, start, count)
    idx = start + np.arange(count)
    out[(idx < 0) | (idx >= n)] = 0.0  # the resampled signal ends where the recording does
    return out


def decode_wav(path, rate: int) -> np.ndarray:
    """A whole WAV file as mono float32 at ``rate`` Hz (for short clips; :func:`read_window` for long ones)."""
    info = wav_info(path)
    return read_window(path, rate, 0, resampled_length(info.frames, info.rate, rate))


__all__ = [
    "WavInfo",
    "decode_wav",
    "read_frames",
    "read_window",
    "resample_window",
    "resampled_length",
    "wav_info",
]
