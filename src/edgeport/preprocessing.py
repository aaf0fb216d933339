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

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, InputError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_LABELS = [str(i) for i in range(10)]
OPS = ("decode", "resize", "center_crop", "scale", "normalize", "layout", "dtype")
MAX_SIDE = 16384


def _mnist_steps() -> list[dict]:
    return [
        {"op": "decode", "mode": "L", "fit_digit": True},
        {"op": "scale", "factor": 1.0 / 255.0},
        {"op": "normalize", "mean": [MNIST_MEAN], "std": [MNIST_STD]},
        {"op": "layout", "layout": "NCHW"},
        {"op": "dtype", "dtype": "float32"},
    ]


def _imagenet_steps(size: int = 224, resize: int = 256) -> list[dict]:
    return [
        {"op": "decode", "mode": "RGB"},
        {"op": "resize", "size": resize, "mode": "shorter", "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [size, size]},
        {"op": "scale", "factor": 1.0 / 255.0},
        {"op": "normalize", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        {"op": "layout", "layout": "NCHW"},
        {"op": "dtype", "dtype": "float32"},
    ]


PRESETS: dict[str, Callable[[], list[dict]]] = {"mnist": _mnist_steps, "imagenet": _imagenet_steps}


# --------------------------------------------------------------------------- validation


def _check_steps(steps, fail: Callable[[str, str], Exception]) -> list[dict]:
    """Each step's fields and types; ``fail(where, what)`` builds the error to raise."""
    if not isinstance(steps, list) or not steps:
        raise fail("preprocessing.steps", "must be a non-empty list")
    if len(steps) > len(OPS):
        raise fail("preprocessing.steps", f"has {len(steps)} steps, at most {len(OPS)}")
    order = [s.get("op") if isinstance(s, dict) else None for s in steps]
    if order[0] != "decode" or any(o not in OPS for o in order) or len(set(order)) != len(order):
        raise fail("preprocessing.steps", f"must start with decode and use each of {', '.join(OPS)} once")
    if order != sorted(order, key=OPS.index):
        raise fail("preprocessing.steps", f"must come in the order {', '.join(OPS)}")
    allowed = {
        "decode": {"mode", "fit_digit"},
        "resize": {"size", "mode", "interpolation", "antialias"},
        "center_crop": {"size"},
        "scale": {"factor"},
        "normalize": {"mean", "std"},
        "layout": {"layout"},
        "dtype": {"dtype"},
    }
    for i, s in enumerate(steps):
        where = f"preprocessing.steps[{i}] ({s['op']})"
        extra = set(s) - {"op"} - allowed[s["op"]]
        if extra:
            raise fail(where, f"has unknown field(s) {', '.join(sorted(map(str, extra)))[:100]}")
        _check_step(s, where, fail)
    return steps


def _side(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE


def _finite(v, lo=-1e6, hi=1e6) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _check_step(s: dict, where: str, fail) -> None:
    op = s["op"]
    if op == "decode":
        if s.get("mode") not in ("L", "RGB") or not isinstance(s.get("fit_digit", False), bool):
            raise fail(where, "needs mode L or RGB (and fit_digit true/false)")
        if s.get("fit_digit") and s["mode"] != "L":
            raise fail(where, "fit_digit needs mode L")
    elif op == "resize":
        size = s.get("size")
        mode = s.get("mode", "shorter" if isinstance(size, int) else "exact")
        ok_size = (
            _side(size)
            if mode == "shorter"
            else (isinstance(size, list) and len(size) == 2 and all(map(_side, size)))
        )
        if mode not in ("shorter", "exact") or not ok_size:
            raise fail(where, f"needs size (int for mode shorter, [h, w] for exact, 1..{MAX_SIDE})")
        if s.get("interpolation", "bilinear") != "bilinear" or s.get("antialias", True) is not True:
            raise fail(where, "supports interpolation bilinear with antialias true only")
    elif op == "center_crop":
        size = s.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(map(_side, size))):
            raise fail(where, f"needs size [h, w] with sides 1..{MAX_SIDE}")
    elif op == "scale":
        if not _finite(s.get("factor"), 1e-9, 1e3) or s["factor"] <= 0:
            raise fail(where, "needs a positive factor")
    elif op == "normalize":
        mean, std = s.get("mean"), s.get("std")
        if not (
            isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) and len(mean) in (1, 3)
        ):
            raise fail(where, "needs mean and std lists of 1 or 3 numbers")
        if not all(map(_finite, mean)) or not all(_finite(v, 1e-6, 1e6) for v in std):
            raise fail(where, "needs finite means and stds > 0")
    elif op == "layout":
        if s.get("layout") not in ("NCHW", "NHWC"):
            raise fail(where, "needs layout NCHW or NHWC")
    elif op == "dtype":
        if s.get("dtype") not in ("float32", "float16"):
            raise fail(where, "needs dtype float32 or float16")


def validate_manifest_preprocessing(pre, signature, bad) -> dict:
    """Check a manifest's preprocessing block against its input specs; ``bad(where, what)`` makes the error."""
    if not isinstance(pre, dict):
        raise bad("preprocessing", "must be an object or null")
    extra = set(pre) - {"input", "preset", "steps"}
    if extra or "input" not in pre or "steps" not in pre:
        raise bad("preprocessing", "must hold input, steps (and optionally preset)")
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


# --------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class Preprocessing:
    """Ordered steps that turn decoded uint8 images into one model input."""

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
        from PIL import Image

        if resize:
            h, w = img.shape[:2]
            if resize.get("mode", "shorter" if isinstance(resize["size"], int) else "exact") == "shorter":
                short, long_ = (h, w) if h <= w else (w, h)
                new_short, new_long = resize["size"], int(resize["size"] * long_ / short)
                nh, nw = (new_short, new_long) if h <= w else (new_long, new_short)
            else:
                nh, nw = resize["size"]
            if (nh, nw) != (h, w):
                pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
                img = np.asarray(pil.resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.uint8)
                if img.ndim == 2:
                    img = img[..., None]
        if crop:
            ch, cw = crop["size"]
            h, w = img.shape[:2]
            if h < ch or w < cw:  # torchvision pads with zeros first
                ph, pw = max(0, ch - h), max(0, cw - w)
                img = np.pad(img, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))
                h, w = img.shape[:2]
            top = int(round((h - ch) / 2.0))
            left = int(round((w - cw) / 2.0))
            img = img[top : top + ch, left : left + cw]
        return np.ascontiguousarray(img)


# --------------------------------------------------------------------------- building


def _config_fail(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where} {what}")


def from_preset(name: str, input_name: str = "input") -> Preprocessing:
    if name not in PRESETS:
        raise ConfigError(f"unknown preprocessing preset {name!r}; choose from {', '.join(PRESETS)}")
    return Preprocessing(input_name, tuple(PRESETS[name]()), name)


def from_json_file(path: str | os.PathLike, input_name: str) -> Preprocessing:
    """Steps from a small JSON file: a list of steps, or {"preset": ..., "steps": [...]}."""
    p = Path(path)
    try:
        if p.stat().st_size > 1 << 20:
            raise ConfigError(f"--preprocess {p}: file is larger than 1 MiB; it should hold a few steps")
        data = json.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"--preprocess {p} cannot be read ({exc.strerror}); check the path") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--preprocess {p} is not valid JSON ({str(exc)[:100]})") from None
    steps = data.get("steps") if isinstance(data, dict) else data
    preset = data.get("preset") if isinstance(data, dict) else None
    if steps is None and preset:
        return from_preset(preset, input_name)
    _check_steps(steps, _config_fail)
    return Preprocessing(input_name, tuple(steps), preset if isinstance(preset, str) else None)


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
    size = tuple(input_spec.shape[i] for i in hw)
    if preset and (preset.endswith(".json") or os.path.sep in preset):
        base = from_json_file(preset, input_spec.name)
    elif preset:
        base = from_preset(preset, input_spec.name)
    elif channels == 1 and size == (28, 28):
        base = from_preset("mnist", input_spec.name)
    elif channels == 3 and all(isinstance(s, int) for s in size):
        base = Preprocessing(
            input_spec.name, tuple(_imagenet_steps(size[0], int(round(min(size) / 0.875)))), "imagenet"
        )
        if size[0] != size[1]:
            base = _override(base, "center_crop", {"op": "center_crop", "size": list(size)})
    else:
        base = Preprocessing(
            input_spec.name,
            (
                {"op": "decode", "mode": "L" if channels == 1 else "RGB"},
                {"op": "scale", "factor": 1.0 / 255.0},
                {"op": "layout", "layout": input_spec.layout},
                {"op": "dtype", "dtype": input_spec.dtype},
            ),
            None,
        )
    custom = False
    if mode:
        step = dict(base.step("decode"), mode=mode)
        if mode == "RGB":
            step.pop("fit_digit", None)
        base, custom = _override(base, "decode", step), True
    if resize is not None:
        base, custom = (
            _override(
                base,
                "resize",
                {
                    "op": "resize",
                    "size": int(resize),
                    "mode": "shorter",
                    "interpolation": "bilinear",
                    "antialias": True,
                },
            ),
            True,
        )
    if crop is not None:
        c = [crop, crop] if isinstance(crop, int) else list(crop)
        base, custom = _override(base, "center_crop", {"op": "center_crop", "size": c}), True
    if scale is not None:
        base, custom = _override(base, "scale", {"op": "scale", "factor": float(scale)}), True
    if mean is not None or std is not None:
        old = base.step("normalize") or {"mean": [0.0] * channels, "std": [1.0] * channels}
        step = {"op": "normalize", "mean": list(mean or old["mean"]), "std": list(std or old["std"])}
        base, custom = _override(base, "normalize", step), True
    base = _override(base, "layout", {"op": "layout", "layout": input_spec.layout})
    base = _override(base, "dtype", {"op": "dtype", "dtype": input_spec.dtype})
    if custom:
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


__all__ = [
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
