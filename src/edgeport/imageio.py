"""Torch-free, bounded image decoding (Pillow + numpy), shared by both halves of edgeport.

- **Bounded.** The header is read first; an image above the pixel limit
  (:data:`DEFAULT_MAX_PIXELS`, raised with ``--max-pixels`` or
  ``$EDGEPORT_MAX_PIXELS``) is decoded at reduced size where the format allows
  (JPEG's DCT scaling through ``Image.draft``) and refused otherwise, before
  any pixel is decoded.
- **Bit depths.** 16-bit grayscale (PNG/TIFF ``I;16*``) and 32-bit integer
  images are scaled to 8 bits by their real range (65535 -> 255), never
  truncated; palette images are expanded; transparency is flattened; float
  images are refused with a message.
- **MNIST digits.** :func:`to_mnist` turns any grayscale picture of one digit
  into MNIST's style: white on black, fitted into 20x20, centred by mass in 28x28.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError

SIZE = 28  # MNIST output side
BOX = 20  # the digit's longest side, as in MNIST
NOISE_FLOOR = 0.2
MAX_PIXELS_ENV = "EDGEPORT_MAX_PIXELS"
# 25 megapixels: a 6000x4000 camera photo.  Larger JPEGs decode at reduced size.
DEFAULT_MAX_PIXELS = 25_000_000
MAX_PIXELS_CEILING = 1_000_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


def max_pixels(override: int | None = None) -> int:
    """The pixel limit: ``override``, else ``$EDGEPORT_MAX_PIXELS``, else the default."""
    value = override
    if value is None:
        env = os.environ.get(MAX_PIXELS_ENV)
        if env:
            try:
                value = int(env)
            except ValueError:
                raise ConfigError(f"{MAX_PIXELS_ENV}={env[:40]!r} is not a whole number") from None
    value = DEFAULT_MAX_PIXELS if value is None else value
    if not 1 <= value <= MAX_PIXELS_CEILING:
        raise ConfigError(f"the pixel limit must be between 1 and {MAX_PIXELS_CEILING:,}, got {value}")
    return value


_PIL_LOCK = threading.Lock()


@contextmanager
def _our_limit_only():
    """Pillow's own bomb check off (ours is stricter and runs first); restored afterwards."""
    from PIL import Image

    with _PIL_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        with _PIL_LOCK:
            Image.MAX_IMAGE_PIXELS = old


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise DataError(f"image {path} not found; check the path")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass image files (PNG, JPEG, ...)")
    try:
        with _our_limit_only():
            return Image.open(path)
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image Pillow can read; pass PNG or JPEG files") from None
    except (OSError, ValueError, SyntaxError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path} cannot be opened as an image ({first}); re-save it as PNG or JPEG") from None


def decode(path: str | os.PathLike, mode: str, *, limit: int | None = None) -> np.ndarray:
    """Decode ``path`` to uint8 ``[H,W]`` (mode ``L``) or ``[H,W,3]`` (mode ``RGB``), within the pixel limit."""
    from PIL import Image, ImageOps

    path = Path(path)
    limit = max_pixels(limit)
    img = _open(path)
    try:
        with img:
            w, h = img.size
            if w < 1 or h < 1:
                raise DataError(f"{path} has no pixels ({w}x{h})")
            if w * h > limit:
                if img.format == "JPEG":  # DCT scaling by 1/2, 1/4 or 1/8: decode small, never whole
                    scale = 2 ** math.ceil(math.log2((w * h / limit) ** 0.5))
                    if scale <= 8:
                        img.draft(img.mode, (-(-w // scale), -(-h // scale)))
                if img.size[0] * img.size[1] > limit:
                    raise DataError(
                        f"{path} is {w}x{h} = {w * h:,} pixels, above the limit of {limit:,}; downscale it, or "
                        f"raise the limit with --max-pixels or {MAX_PIXELS_ENV}"
                    )
            with _our_limit_only():
                img.load()
            img = ImageOps.exif_transpose(img)
            return _to_mode(img, mode, path)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"{path} is too large to decode safely; downscale it first") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path} is corrupt or truncated ({first}); re-save it as PNG or JPEG") from None


def _to_mode(img, mode: str, path: Path) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to uint8 L or RGB."""
    from PIL import Image

    m = img.mode
    if m in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if m.startswith("I;16") or arr.max(initial=0) <= 65535 else float(arr.max())
        if arr.min(initial=0) < 0:
            raise DataError(f"{path} is a signed integer image with negative values; save it as 8-bit PNG")
        gray = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        img = Image.fromarray(gray, "L")
    elif m == "F":
        raise DataError(f"{path} is a floating-point image (mode F); save it as an 8-bit or 16-bit PNG")
    elif m not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "La", "LAB", "HSV"):
        raise DataError(f"{path} has an unsupported image mode {m}; save it as PNG or JPEG")
    if mode == "RGB":
        # As torchvision's ImageFolder loader does: convert("RGB") (transparency is dropped).
        return np.array(img.convert("RGB"), dtype=np.uint8)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        img = _flatten_alpha(img.convert("RGBA"))
    return np.array(img.convert("L"), dtype=np.uint8)


def _flatten_alpha(rgba):
    """Composite a transparent image onto the background that contrasts with its strokes."""
    from PIL import Image

    arr = np.asarray(rgba, dtype=np.float32)
    alpha = arr[..., 3]
    lum = arr[..., :3].mean(axis=-1)
    opaque = alpha > 127
    dark_strokes = opaque.any() and float(lum[opaque].mean()) < 128
    bg = (255, 255, 255, 255) if dark_strokes else (0, 0, 0, 255)
    base = Image.new("RGBA", rgba.size, bg)
    return Image.alpha_composite(base, rgba).convert("RGB")


# --------------------------------------------------------------------------- MNIST-style digits


def read_gray(path: str | os.PathLike, *, limit: int | None = None) -> np.ndarray:
    """Decode an image file to float32 grayscale ``[H,W]`` in 0..255."""
    return decode(path, "L", limit=limit).astype(np.float32)


def load_image(path: str | os.PathLike, *, limit: int | None = None) -> np.ndarray:
    """One image file as an MNIST-style uint8 ``[28,28]`` digit."""
    return to_mnist(read_gray(path, limit=limit))


def load_images(paths: Iterable[str | os.PathLike], *, limit: int | None = None) -> np.ndarray:
    arrays = [load_image(p, limit=limit) for p in paths]
    if not arrays:
        raise DataError("no image files given; pass one or more PNG or JPEG files")
    return np.stack(arrays)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """Grayscale ``[H,W]`` (0..255, any size) -> uint8 ``[28,28]``, white digit on black, centred.

    Inverts dark-on-light pictures (decided by the border), stretches the
    contrast, crops to the digit, fits it into 20x20 and centres it by mass.
    """
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise DataError(f"expected a 2-D grayscale image, got shape {list(a.shape)}")
    if _border_median(a) > 127.5:
        a = 255.0 - a
    bg = _border_median(a)
    span = float(a.max()) - bg
    if span < 1.0:  # blank picture: nothing to centre
        return np.zeros((SIZE, SIZE), np.uint8)
    a = np.clip((a - bg) / span, 0.0, 1.0)
    a[a < NOISE_FLOOR] = 0.0
    rows = np.flatnonzero(a.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0))
    a = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _centre_by_mass(_resize_to_box(a))


def _border_median(a: np.ndarray) -> float:
    k = max(1, min(a.shape) // 20)
    border = np.concatenate([a[:k].ravel(), a[-k:].ravel(), a[:, :k].ravel(), a[:, -k:].ravel()])
    return float(np.median(border))


def _resize_to_box(a: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = a.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"
    method = Image.Resampling.BILINEAR if scale > 1 else Image.Resampling.BOX
    return np.clip(np.asarray(img.resize((nw, nh), method)), 0.0, 1.0)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    h, w = digit.shape
    total = float(digit.sum())
    if total > 0:
        cy = float((digit.sum(axis=1) * np.arange(h)).sum()) / total
        cx = float((digit.sum(axis=0) * np.arange(w)).sum()) / total
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top : top + h, left : left + w] = digit
    return np.round(out * 255.0).astype(np.uint8)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


__all__ = ["decode", "load_image", "load_images", "max_pixels", "read_gray", "to_mnist", "list_images"]


def check_image(path: str | os.PathLike, *, limit: int | None = None) -> tuple[int, int]:
    """(width, height) of ``path`` from its header, without decoding it: :class:`DataError` when it is
    missing, not an image, or too large to decode within the pixel limit (JPEG: even scaled by 1/8)."""
    path = Path(path)
    limit = max_pixels(limit)
    img = _open(path)
    with img:
        w, h = img.size
        slack = 64 if img.format == "JPEG" else 1
    if w < 1 or h < 1:
        raise DataError(f"{path} has no pixels ({w}x{h})")
    if w * h > limit * slack:
        raise DataError(
            f"{path} is {w}x{h} = {w * h:,} pixels, above the limit of {limit:,}; downscale it, or "
            f"raise the limit with --max-pixels or {MAX_PIXELS_ENV}"
        )
    return w, h
