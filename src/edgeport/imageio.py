"""Torch-free image loading: any PNG/JPEG -> an MNIST-style uint8 ``[28,28]`` digit.

MNIST digits are white on black, fitted into a 20x20 box and centred by their
centre of mass in a 28x28 frame.  :func:`to_mnist` does the same to any
grayscale picture: it inverts dark-on-light images (decided by the border,
which is background in a photo or scan of one digit), stretches the contrast
so the background is 0 and the stroke 255, crops to the digit, resizes it
keeping its aspect ratio, and centres it.  Pillow and numpy only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import DataError

SIZE = 28  # output side
BOX = 20  # the digit's longest side, as in MNIST
# After contrast stretching, pixels below this fraction of full scale count as
# background (removes JPEG ringing and paper texture).
NOISE_FLOOR = 0.2


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read one PNG/JPEG (any size or mode) as an MNIST-style uint8 ``[28,28]`` array."""
    return to_mnist(read_gray(path))


def load_images(paths: Iterable[str | os.PathLike]) -> np.ndarray:
    """:func:`load_image` over ``paths``, stacked into uint8 ``[N,28,28]``."""
    arrays = [load_image(p) for p in paths]
    if not arrays:
        raise DataError("no image files given; pass one or more PNG or JPEG files")
    return np.stack(arrays)


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to float32 grayscale ``[H,W]`` in 0..255; :class:`DataError` if unreadable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise DataError(f"image {path} not found; check the path")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass PNG or JPEG image files")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = _flatten_alpha(img.convert("RGBA"))
            gray = np.asarray(img.convert("L"), dtype=np.float32)
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image Pillow can read; pass PNG or JPEG files") from None
    except (OSError, ValueError, SyntaxError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path} is corrupt or truncated ({first}); re-save it as PNG or JPEG") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path} is too large to decode safely; downscale it first") from None
    if gray.ndim != 2 or gray.size == 0:
        raise DataError(f"{path} decoded to an empty image; re-save it as PNG or JPEG")
    return gray


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


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """Grayscale ``[H,W]`` (0..255, any size) -> uint8 ``[28,28]``, white digit on black, centred."""
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise DataError(f"expected a 2-D grayscale image, got shape {list(a.shape)}")
    if _border_median(a) > 127.5:  # light background: dark-on-light, invert like MNIST
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
    digit = _resize_to_box(a)
    return _centre_by_mass(digit)


def _border_median(a: np.ndarray) -> float:
    k = max(1, min(a.shape) // 20)
    border = np.concatenate([a[:k].ravel(), a[-k:].ravel(), a[:, :k].ravel(), a[:, -k:].ravel()])
    return float(np.median(border))


def _resize_to_box(a: np.ndarray) -> np.ndarray:
    """Scale so the longest side is :data:`BOX`, keeping the aspect ratio; float 0..1 in and out."""
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
    # MNIST puts the centre of mass at pixel (14, 14) (measured on the test set: 13.99, 14.00)
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - w))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top : top + h, left : left + w] = digit
    return np.round(out * 255.0).astype(np.uint8)


__all__ = ["load_image", "load_images", "read_gray", "to_mnist"]
