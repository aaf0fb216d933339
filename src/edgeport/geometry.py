"""Where an original image's pixels land in the model input, for boxes and label maps (numpy + Pillow).

The image steps ``resize`` (shorter side or exact) and ``center_crop``
(zero-padded first when the image is smaller, as torchvision) move and scale
pixels; :class:`Geometry` is that map for one original size, in pixel-edge
coordinates (``x = 0`` is the left edge of the first pixel, ``x = w`` the right
edge of the last), so a box ``[x0, y0, x1, y1]`` maps to
``[x0 * sx + dx, y0 * sy + dy, x1 * sx + dx, y1 * sy + dy]`` and is then
clipped to the input.  Label maps take the same resize with nearest-neighbour
resampling and the same crop; where the crop pads, the label is ``ignore``
(255), never a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, InputError

IGNORE = 255
# The most pixels a resize step builds in full before its centre crop.  Beyond this (a 1x100000
# strip resized to a shorter side of 256 would be 6.5 G pixels), only the window the crop keeps is
# resized: Pillow resamples that source box (equal to resizing then cropping within one grey level).
FULL_RESIZE_LIMIT = 1 << 24


def resized_hw(h: int, w: int, resize: dict | None) -> tuple[int, int]:
    """The size the ``resize`` step gives an ``h`` x ``w`` image (as :meth:`Preprocessing.apply` does)."""
    if not resize:
        return h, w
    if resize.get("mode", "shorter" if isinstance(resize["size"], int) else "exact") == "shorter":
        short, long_ = (h, w) if h <= w else (w, h)
        new_short, new_long = resize["size"], int(resize["size"] * long_ / short)
        return (new_short, new_long) if h <= w else (new_long, new_short)
    return tuple(resize["size"])


def large_resize(h: int, w: int, resize: dict | None) -> bool:
    """Whether ``resize`` turns an ``h`` x ``w`` image into more than :data:`FULL_RESIZE_LIMIT` pixels."""
    nh, nw = resized_hw(h, w, resize)
    return nh * nw > FULL_RESIZE_LIMIT


def resize_crop(
    img: np.ndarray, resize: dict | None, crop: dict | None, resample, fill: int = 0
) -> np.ndarray:
    """``img`` ``[H,W,C]`` uint8 through the ``resize`` and ``center_crop`` steps, in memory bounded by
    the larger of the image and the output: the full resized image is built only up to
    :data:`FULL_RESIZE_LIMIT` pixels; beyond, only the window the crop keeps is resized.  Where the
    crop is larger than the image it pads with ``fill`` (torchvision pads with zeros).  Without a crop,
    a resize beyond the limit is an :class:`InputError`."""
    from PIL import Image

    h, w, c = img.shape
    nh, nw = resized_hw(h, w, resize)

    def resized(size, box=None) -> np.ndarray:
        pil = Image.fromarray(img[..., 0] if c == 1 else img)
        out = np.asarray(pil.resize(size, resample, box=box), dtype=np.uint8)
        return out[..., None] if out.ndim == 2 else out

    if not crop:
        if nh * nw > FULL_RESIZE_LIMIT:
            raise InputError(
                f"a {w}x{h} image would be resized to {nw}x{nh} = {nh * nw:,} pixels, above the limit of "
                f"{FULL_RESIZE_LIMIT:,}; crop the image, or add a center_crop step to the preprocessing"
            )
        return img if (nh, nw) == (h, w) else resized((nw, nh))
    ch, cw = crop["size"]
    pad_t, pad_l, top, left = crop_window(nh, nw, crop)
    oy, ox = top - pad_t, left - pad_l  # the crop's corner in resized coordinates (negative: padding)
    r0, r1, c0, c1 = max(0, oy), min(nh, oy + ch), max(0, ox), min(nw, ox + cw)
    if (nh, nw) == (h, w):
        region = img[r0:r1, c0:c1]
    elif nh * nw <= FULL_RESIZE_LIMIT:
        region = resized((nw, nh))[r0:r1, c0:c1]
    else:
        region = resized((c1 - c0, r1 - r0), box=(c0 * w / nw, r0 * h / nh, c1 * w / nw, r1 * h / nh))
    if (r0, r1, c0, c1) == (oy, oy + ch, ox, ox + cw):
        return np.ascontiguousarray(region)
    out = np.full((ch, cw, c), fill, np.uint8)
    out[r0 - oy : r1 - oy, c0 - ox : c1 - ox] = region
    return out


def crop_window(h: int, w: int, crop: dict | None) -> tuple[int, int, int, int]:
    """(pad top, pad left, crop top, crop left) of the ``center_crop`` step on an ``h`` x ``w`` image."""
    if not crop:
        return 0, 0, 0, 0
    ch, cw = crop["size"]
    ph, pw = max(0, ch - h), max(0, cw - w)
    top = int(round((h + ph - ch) / 2.0))
    left = int(round((w + pw - cw) / 2.0))
    return ph // 2, pw // 2, top, left


@dataclass(frozen=True)
class Geometry:
    """Original image coordinates -> model-input pixel coordinates: ``x' = x * sx + dx``."""

    sx: float
    sy: float
    dx: float
    dy: float
    out_h: int
    out_w: int

    def boxes(self, xyxy) -> tuple[np.ndarray, np.ndarray]:
        """(boxes mapped and clipped to the input, float64 ``[k,4]``; which of the given boxes survive
        with a positive area)."""
        b = np.asarray(xyxy, np.float64).reshape(-1, 4)
        out = b * np.array([self.sx, self.sy, self.sx, self.sy]) + np.array(
            [self.dx, self.dy, self.dx, self.dy]
        )
        out[:, 0::2] = out[:, 0::2].clip(0, self.out_w)
        out[:, 1::2] = out[:, 1::2].clip(0, self.out_h)
        keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
        return out[keep], keep


def geometry_of(pre, h: int, w: int) -> Geometry:
    """The map of ``pre``'s resize and crop steps for an original ``h`` x ``w`` image."""
    if pre.fit_digit:
        raise ConfigError(
            "the mnist preprocessing fits each digit by its content, so boxes and label maps cannot follow "
            "it; use resize/center_crop steps (--preprocess FILE.json, --resize, --crop)"
        )
    resize, crop = pre.step("resize"), pre.step("center_crop")
    nh, nw = resized_hw(h, w, resize)
    pad_t, pad_l, top, left = crop_window(nh, nw, crop)
    out_h, out_w = tuple(crop["size"]) if crop else (nh, nw)
    return Geometry(nw / w, nh / h, float(pad_l - left), float(pad_t - top), out_h, out_w)


def apply_mask(pre, mask: np.ndarray, ignore: int = IGNORE) -> np.ndarray:
    """A uint8 label map ``[H,W]`` through ``pre``'s resize (nearest) and crop (padding with ``ignore``)."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != np.uint8:
        raise InputError(f"a label map must be uint8 [H,W], got {m.dtype} {list(m.shape)}")
    if pre.fit_digit:
        geometry_of(pre, *m.shape)  # raises the explanation
    out = resize_crop(
        m[..., None], pre.step("resize"), pre.step("center_crop"), Image.Resampling.NEAREST, ignore
    )
    return np.ascontiguousarray(out[..., 0])


__all__ = [
    "FULL_RESIZE_LIMIT",
    "Geometry",
    "IGNORE",
    "apply_mask",
    "crop_window",
    "geometry_of",
    "large_resize",
    "resize_crop",
    "resized_hw",
]
