"""Preprocessing as ordered steps, recorded in the manifest and run by the torch-free runtime.

Steps (in this order, each optional but ``decode``):

=================  =====================================================================
``decode``         ``mode`` L or RGB (files are decoded with :mod:`edgeport.imageio`);
                   ``fit_digit``: fit one digit MNIST-style into 28x28 (files only)
``resize``         ``size`` (int: the shorter side, or [h, w] exact), ``mode`` shorter|exact,
                   bilinear with antialias (Pillow's, which torchvision v2 matches)
``center_crop``    ``size`` [h, w] (zero-padded when the image is smaller, as torchvision)
``scale``          ``factor``: pixels * factor (1/255 maps 0..255 to [0, 1])
``normalize``      per-channel ``mean`` and ``std``
``layout``         NCHW or NHWC
``dtype``          the model input dtype (float32, float16)
=================  =====================================================================

Presets: ``mnist`` (the seed network's input) and ``imagenet`` (resize 256,
centre crop 224, ImageNet mean/std).  numpy + Pillow only; the torch half
builds the same steps with torchvision.transforms.v2
(:func:`edgeport.sources.transforms.to_torchvision`) and a test holds the two equal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .errors import ConfigError, InputError, safe_text
from .image_steps import (  # noqa: F401 - re-exported: the stable names
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_SIDE,
    MNIST_LABELS,
    MNIST_MEAN,
    MNIST_STD,
    OPS,
    PRESETS,
    _check_steps,
    _config_fail,
    _imagenet_steps,
)


def validate_manifest_preprocessing(pre, signature, bad) -> dict:
    """Check a manifest's preprocessing block against its input specs; ``bad(where, what)`` makes the error.

    A block with ``"kind": "audio"`` holds audio steps (:mod:`edgeport.audio`); one without ``kind``
    (every schema-2 bundle) or with ``"kind": "image"`` holds image steps.
    """
    if not isinstance(pre, dict):
        raise bad("preprocessing", "must be an object or null")
    kind = pre.get("kind", "image")
    if kind == "audio":
        from .audio import validate_manifest_audio

        return validate_manifest_audio(pre, signature, bad)
    if kind != "image":
        raise bad("preprocessing.kind", "must be image or audio")
    extra = set(pre) - {"input", "preset", "steps", "kind"}
    if extra or "input" not in pre or "steps" not in pre:
        raise bad("preprocessing", "must hold input, steps (and optionally preset, kind)")
    if pre.get("preset") is not None and (not isinstance(pre["preset"], str) or len(pre["preset"]) > 64):
        raise bad("preprocessing.preset", "must be a short string or null")
    try:
        spec = signature.input(pre["input"])
    except (KeyError, TypeError):
        raise bad("preprocessing.input", "does not name one of the inputs") from None
    steps = _check_steps(pre["steps"], bad)
    p = Preprocessing(pre["input"], tuple(steps), pre.get("preset"))
    problem = p.mismatch(spec)
    if problem:
        raise bad("preprocessing", problem)
    return pre


def from_manifest(d: dict):
    """The runnable preprocessing of a (validated) manifest block: image or audio steps."""
    if d.get("kind") == "audio":
        from .audio import AudioPreprocessing

        return AudioPreprocessing.from_manifest(d)
    return Preprocessing.from_manifest(d)


# --------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class Preprocessing:
    """Ordered steps that turn decoded uint8 images into one model input."""

    kind: ClassVar[str] = "image"
    input: str
    steps: tuple[dict, ...]
    preset: str | None = None

    @classmethod
    def from_manifest(cls, d: dict) -> Preprocessing:
        return cls(d["input"], tuple(d["steps"]), d.get("preset"))

    def to_manifest(self) -> dict:
        return {"input": self.input, "preset": self.preset, "steps": [dict(s) for s in self.steps]}

    def step(self, op: str) -> dict | None:
        return next((s for s in self.steps if s["op"] == op), None)

    @property
    def mode(self) -> str:
        return self.steps[0]["mode"]

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def fit_digit(self) -> bool:
        return bool(self.steps[0].get("fit_digit"))

    @property
    def layout(self) -> str:
        s = self.step("layout")
        return s["layout"] if s else "NCHW"

    @property
    def dtype(self) -> str:
        s = self.step("dtype")
        return s["dtype"] if s else "float32"

    @property
    def factor(self) -> float:
        s = self.step("scale")
        return float(s["factor"]) if s else 1.0

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.step("normalize")
        c = self.channels
        if s is None:
            return np.zeros(c, np.float32), np.ones(c, np.float32)
        mean = np.asarray(s["mean"], np.float32)
        std = np.asarray(s["std"], np.float32)
        return np.broadcast_to(mean, (c,)).copy(), np.broadcast_to(std, (c,)).copy()

    def value_range(self) -> tuple[float, float]:
        """The range of model inputs that pixels 0..255 map to (over every channel)."""
        mean, std = self.mean_std()
        lo = (0.0 * self.factor - mean) / std
        hi = (255.0 * self.factor - mean) / std
        return float(min(lo.min(), hi.min())), float(max(lo.max(), hi.max()))

    def output_hw(self) -> tuple[int, int] | None:
        """The fixed (h, w) the steps produce, or None if it depends on the image."""
        crop, resize = self.step("center_crop"), self.step("resize")
        if crop:
            return tuple(crop["size"])
        if resize and resize.get("mode", "shorter") == "exact":
            return tuple(resize["size"])
        return None

    def mismatch(self, spec) -> str:
        """Why these steps cannot feed ``spec`` (empty if they can)."""
        if spec.rank != 4 or spec.layout is None:
            return f"input {spec.name!r} is not an image input (rank 4 with a layout)"
        if spec.layout != self.layout:
            return f"the steps produce {self.layout} but input {spec.name!r} is {spec.layout}"
        c_axis, hw = (1, (2, 3)) if spec.layout == "NCHW" else (3, (1, 2))
        if spec.shape[c_axis] != self.channels:
            return f"decode mode {self.mode} gives {self.channels} channel(s), input {spec.name!r} has {spec.shape[c_axis]}"
        s = self.step("normalize")
        if s and len(s["mean"]) not in (1, self.channels):
            return f"normalize has {len(s['mean'])} means for {self.channels} channels"
        if self.dtype != spec.dtype:
            return f"the steps produce {self.dtype} but input {spec.name!r} is {spec.dtype}"
        out = self.output_hw()
        want = tuple(spec.shape[i] for i in hw)
        if out is not None and all(isinstance(w, int) for w in want) and out != want:
            return (
                f"the steps produce {out[0]}x{out[1]} images but input {spec.name!r} is {want[0]}x{want[1]}"
            )
        return ""

    def describe(self) -> str:
        parts = []
        for s in self.steps:
            args = ", ".join(f"{k}={v}" for k, v in s.items() if k != "op")
            parts.append(f"{s['op']}({args})")
        return " -> ".join(parts)

    # -- running ---------------------------------------------------------------
    def decode_file(self, path: str | os.PathLike, *, limit: int | None = None) -> np.ndarray:
        """One file -> uint8 HWC (``[H,W]`` for L), as the decode step says."""
        from .imageio import decode, to_mnist

        img = decode(path, self.mode, limit=limit)
        if self.fit_digit:
            img = to_mnist(img.astype(np.float32))
        return img

    def check_file(self, path: str | os.PathLike, *, limit: int | None = None) -> None:
        """A DataError now if ``path`` is not an image this can decode (its header only)."""
        from .imageio import check_image

        check_image(path, limit=limit)

    def load(self, paths: Sequence[str | os.PathLike], *, limit: int | None = None) -> np.ndarray:
        """Files -> one model-ready batch."""
        return self.apply([self.decode_file(p, limit=limit) for p in paths])

    def apply(self, images) -> np.ndarray:
        """Decoded uint8 images -> the model input.

        ``images``: a uint8 array ``[N,H,W]`` (mode L), ``[N,H,W,C]`` with C the
        decode mode's channels, or a list of ``[H,W(,C)]`` arrays of any sizes.
        Anything else (floats, channel-first, the wrong channel count) is an
        :class:`InputError`; nothing is reshaped to fit.
        """
        batch = self._as_hwc_list(images)
        resize, crop = self.step("resize"), self.step("center_crop")
        if resize or crop:
            batch = [self._geometry(img, resize, crop) for img in batch]
        sizes = {img.shape for img in batch}
        if len(sizes) != 1:
            raise InputError(
                f"images have different sizes {sorted(s[:2] for s in sizes)[:4]} and the steps have no "
                "resize/center_crop to make them equal; add them or pass equal-sized images"
            )
        x = np.stack(batch).astype(np.float32)  # N,H,W,C
        x *= np.float32(self.factor)
        mean, std = self.mean_std()
        if self.step("normalize"):
            x -= mean
            x /= std
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float16 if self.dtype == "float16" else np.float32)

    def _as_hwc_list(self, images) -> list[np.ndarray]:
        c = self.channels
        want = "[N,H,W] or [N,H,W,1]" if c == 1 else "[N,H,W,3] (channels last, as decoded)"
        if isinstance(images, (list, tuple)):
            items = list(images)
        else:
            try:
                arr = np.asarray(images)
            except (ValueError, TypeError) as exc:
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise InputError(
                    f"images must be a uint8 array {want}; got something numpy cannot convert ({first})"
                ) from None
            if c == 1 and arr.ndim == 2:
                arr = arr[None]
            if arr.ndim not in (3, 4) or (c == 3 and arr.ndim != 4):
                raise InputError(f"images must be uint8 {want}, got shape {list(arr.shape)}")
            items = list(arr)
        if not items:
            raise InputError("no images given; pass at least one image")
        out = []
        for i, img in enumerate(items):
            img = np.asarray(img)
            if img.dtype != np.uint8:
                raise InputError(
                    f"image {i} has dtype {img.dtype}; images must be uint8 0..255 (decoded pixels)"
                )
            if img.ndim == 2 and c == 1:
                img = img[..., None]
            if img.ndim != 3 or img.shape[2] != c or min(img.shape[:2]) < 1:
                hint = (
                    "; it looks channel-first (CHW): pass channel-last images"
                    if img.ndim == 3 and img.shape[0] == c and img.shape[2] != c
                    else ""
                )
                raise InputError(
                    f"image {i} has shape {list(img.shape)}; decode mode {self.mode} needs {c} channel(s) "
                    f"channel-last, {want}{hint}"
                )
            out.append(img)
        return out

    @staticmethod
    def _geometry(img: np.ndarray, resize: dict | None, crop: dict | None) -> np.ndarray:
        """Resize then centre-crop (zero padding, as torchvision), never building a resized image much
        larger than the input or the output (:func:`edgeport.geometry.resize_crop`)."""
        from PIL import Image

        from .geometry import resize_crop

        return np.ascontiguousarray(resize_crop(img, resize, crop, Image.Resampling.BILINEAR))

    # -- boxes and label maps ------------------------------------------------------
    def geometry(self, h: int, w: int):
        """Where an original ``h`` x ``w`` image's pixels land in the model input
        (:class:`edgeport.geometry.Geometry`: scale and offset of the resize and crop steps)."""
        from .geometry import geometry_of

        return geometry_of(self, h, w)

    def apply_mask(self, mask: np.ndarray, ignore: int = 255) -> np.ndarray:
        """A uint8 label map ``[H,W]`` through the same resize (nearest) and crop; padding is ``ignore``."""
        from .geometry import apply_mask

        return apply_mask(self, mask, ignore)


__all__ = [
    "from_manifest",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_LABELS",
    "MNIST_MEAN",
    "MNIST_STD",
    "PRESETS",
    "Preprocessing",
    "build",
    "from_json_file",
    "from_preset",
    "validate_manifest_preprocessing",
]


# --------------------------------------------------------------------------- building the steps


def from_preset(name: str, input_name: str = "input") -> Preprocessing:
    if name not in PRESETS:
        raise ConfigError(f"unknown preprocessing preset {name!r}; choose from {', '.join(PRESETS)}")
    return Preprocessing(input_name, tuple(PRESETS[name]()), name)


def from_json_file(path: str | os.PathLike, input_name: str) -> Preprocessing:
    """Steps from a small JSON file: a list of steps, or {"preset": ..., "steps": [...]}."""
    from .jsonsafe import read_preprocess_file

    p = Path(path)
    data = read_preprocess_file(p)
    if not isinstance(data, (dict, list)):
        raise ConfigError(
            f"--preprocess {p} holds a {type(data).__name__}; expected a list of steps or "
            '{"preset": NAME} / {"steps": [...]}'
        )
    steps = data.get("steps") if isinstance(data, dict) else data
    preset = data.get("preset") if isinstance(data, dict) else None
    if preset is not None and (not isinstance(preset, str) or len(preset) > 64):
        raise ConfigError(
            f"--preprocess {p}: preset must be a name ({', '.join(PRESETS)}), got {type(preset).__name__}"
        )
    if steps is None and preset:
        return from_preset(preset, input_name)
    _check_steps(steps, _config_fail)
    return Preprocessing(input_name, tuple(steps), preset)


def _is_file(preset: str | None) -> bool:
    return bool(preset) and (preset.endswith(".json") or os.path.sep in preset)


def _base(input_spec, preset: str | None, channels: int, size: tuple) -> Preprocessing:
    """The steps before any flag: the preset or file, else a default for the input's shape."""
    if _is_file(preset):
        return from_json_file(preset, input_spec.name)
    if preset:
        return from_preset(preset, input_spec.name)
    if channels == 1 and size == (28, 28):
        return from_preset("mnist", input_spec.name)
    if channels == 3 and all(isinstance(s, int) for s in size):
        base = Preprocessing(
            input_spec.name, tuple(_imagenet_steps(size[0], int(round(min(size) / 0.875)))), "imagenet"
        )
        if size[0] != size[1]:
            base = _override(base, "center_crop", {"op": "center_crop", "size": list(size)})
        return base
    steps = (
        {"op": "decode", "mode": "L" if channels == 1 else "RGB"},
        {"op": "scale", "factor": 1.0 / 255.0},
        {"op": "layout", "layout": input_spec.layout},
        {"op": "dtype", "dtype": input_spec.dtype},
    )
    return Preprocessing(input_spec.name, steps, None)


def _flag_steps(base: Preprocessing, channels: int, mode, resize, crop, mean, std, scale) -> list[dict]:
    """The steps the command-line flags replace."""
    out = []
    if mode:
        step = dict(base.step("decode"), mode=mode)
        if mode == "RGB":
            step.pop("fit_digit", None)
        out.append(step)
    if resize is not None:
        out.append(
            {
                "op": "resize",
                "size": int(resize),
                "mode": "shorter",
                "interpolation": "bilinear",
                "antialias": True,
            }
        )
    if crop is not None:
        out.append({"op": "center_crop", "size": [crop, crop] if isinstance(crop, int) else list(crop)})
    if scale is not None:
        out.append({"op": "scale", "factor": float(scale)})
    if mean is not None or std is not None:
        old = base.step("normalize") or {"mean": [0.0] * channels, "std": [1.0] * channels}
        out.append({"op": "normalize", "mean": list(mean or old["mean"]), "std": list(std or old["std"])})
    return out


def _check_user_layout(base: Preprocessing, preset: str, input_spec) -> None:
    """Steps the user wrote in a file are not changed silently: layout and dtype must already fit."""
    for op, want in (("layout", input_spec.layout), ("dtype", input_spec.dtype)):
        have = (base.step(op) or {}).get(op)
        if have is not None and have != want:
            raise ConfigError(
                f"--preprocess {safe_text(preset, 200)} sets {op} {safe_text(str(have), 40)}, but input "
                f"{input_spec.name!r} takes {want}; make the step match, or leave it out (edgeport adds it)"
            )


def build(
    *,
    input_spec,
    preset: str | None = None,
    mode: str | None = None,
    resize: int | None = None,
    crop: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float | None = None,
) -> Preprocessing:
    """Preprocessing for ``input_spec`` from a preset or JSON file (``preset``) plus flag overrides.

    With no preset: MNIST's for a 1x28x28 input, ImageNet-style for 3-channel
    images (resize to crop/0.875, centre crop to the input size), a plain 0..1
    scaling for other 1-channel images.
    """
    if input_spec.layout is None:
        raise ConfigError(f"input {input_spec.name!r} is not an image input; it takes no preprocessing steps")
    c_axis, hw = (1, (2, 3)) if input_spec.layout == "NCHW" else (3, (1, 2))
    channels = input_spec.shape[c_axis]
    base = _base(input_spec, preset, channels, tuple(input_spec.shape[i] for i in hw))
    flags = _flag_steps(base, channels, mode, resize, crop, mean, std, scale)
    for step in flags:
        base = _override(base, step["op"], step)
    if _is_file(preset):
        _check_user_layout(base, preset, input_spec)
    base = _override(base, "layout", {"op": "layout", "layout": input_spec.layout})
    base = _override(base, "dtype", {"op": "dtype", "dtype": input_spec.dtype})
    if flags:
        base = Preprocessing(base.input, base.steps, f"{base.preset}+custom" if base.preset else "custom")
    _check_steps([dict(s) for s in base.steps], _config_fail)
    problem = base.mismatch(input_spec)
    if problem:
        raise ConfigError(
            f"preprocessing does not fit the model: {problem}; adjust --preprocess/--resize/--crop"
        )
    return base


def _override(p: Preprocessing, op: str, step: dict) -> Preprocessing:
    steps = [s for s in p.steps if s["op"] != op] + [step]
    steps.sort(key=lambda s: OPS.index(s["op"]))
    return Preprocessing(p.input, tuple(steps), p.preset)
