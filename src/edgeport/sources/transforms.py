"""The manifest's preprocessing steps as torchvision.transforms.v2, for the torch half.

The torch-free runtime runs the same steps with numpy and Pillow
(:mod:`edgeport.preprocessing`); both decode files with
:mod:`edgeport.imageio`, and a test holds their tensors equal within 1/255.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def to_torchvision(pre) -> Callable[[np.ndarray], np.ndarray]:
    """A callable: one decoded uint8 image (``[H,W]`` or ``[H,W,C]``) -> one model-ready sample."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import InterpolationMode, v2

    ops = []
    resize = pre.step("resize")
    if resize:
        size = resize["size"] if resize.get("mode", "shorter") == "shorter" else list(resize["size"])
        ops.append(v2.Resize(size, interpolation=InterpolationMode.BILINEAR, antialias=True))
    crop = pre.step("center_crop")
    if crop:
        ops.append(v2.CenterCrop(list(crop["size"])))
    factor = pre.factor
    if abs(factor - 1.0 / 255.0) < 1e-12:
        ops.append(v2.ToDtype(torch.float32, scale=True))
    else:
        ops.append(v2.ToDtype(torch.float32, scale=False))
        ops.append(v2.Lambda(lambda t: t * factor))
    if pre.step("normalize"):
        mean, std = pre.mean_std()
        ops.append(v2.Normalize([float(m) for m in mean], [float(s) for s in std]))
    compose = v2.Compose(ops)
    dtype = np.float16 if pre.dtype == "float16" else np.float32
    nhwc = pre.layout == "NHWC"

    def run(img: np.ndarray) -> np.ndarray:
        from ..geometry import large_resize

        a = np.asarray(img)
        if a.ndim == 2:
            a = a[..., None]
        if resize and large_resize(a.shape[0], a.shape[1], resize):  # the bounded numpy path instead
            return pre.apply([a])[0]
        a = np.ascontiguousarray(a)
        if not a.flags.writeable:  # a memory-mapped or decoded read-only image: torch wants its own copy
            a = a.copy()
        t = tv_tensors.Image(torch.from_numpy(a).permute(2, 0, 1))
        with torch.no_grad():
            out = compose(t)
        if nhwc:
            out = out.permute(1, 2, 0)
        return np.ascontiguousarray(out.numpy(), dtype=dtype)

    return run


def geometry_only(pre) -> Callable[[np.ndarray], np.ndarray]:
    """The resize/crop steps alone, on uint8 (for comparing both halves before normalisation)."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import InterpolationMode, v2

    ops = []
    resize = pre.step("resize")
    if resize:
        size = resize["size"] if resize.get("mode", "shorter") == "shorter" else list(resize["size"])
        ops.append(v2.Resize(size, interpolation=InterpolationMode.BILINEAR, antialias=True))
    crop = pre.step("center_crop")
    if crop:
        ops.append(v2.CenterCrop(list(crop["size"])))
    compose = v2.Compose(ops)

    def run(img: np.ndarray) -> np.ndarray:
        a = img[..., None] if img.ndim == 2 else img
        a = np.ascontiguousarray(a)
        if not a.flags.writeable:  # a memory-mapped or decoded read-only image: torch wants its own copy
            a = a.copy()
        t = tv_tensors.Image(torch.from_numpy(a).permute(2, 0, 1))
        return compose(t).permute(1, 2, 0).numpy()

    return run
